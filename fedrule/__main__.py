from fedrule.cli import entry

entry()
