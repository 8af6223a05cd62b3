"""The commands: one module per subcommand, the functions the CLI calls."""
