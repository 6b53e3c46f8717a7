"""Run folders (written atomically), tables and plots: writes what the engine returns."""
