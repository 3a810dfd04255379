"""The Textual dashboard. `ccdash.tui.launch.run_tui` opens it; themes are in `ccdash.tui.themes`."""
