"""The Textual dashboard. `ccdash.tui.app.run_tui` opens it; themes are in `ccdash.tui.themes`."""
