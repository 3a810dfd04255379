"""The Textual dashboard. `ccdash.tui.launch.run_tui` opens it; themes: `ccdash.tui.themes`."""
