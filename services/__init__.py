"""The three services of the KGI-Infobrief platform; each owns its data."""
