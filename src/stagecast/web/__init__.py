"""The web app: page shell, built assets, and the front-end source (frontend/)."""
