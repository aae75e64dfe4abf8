"""The catalogue of the notes' claims: importing this package registers every experiment, in --list order."""
