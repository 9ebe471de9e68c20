"""The REST service: a Flask app factory (`rest.app.create_app`) run by gunicorn (`python -m rest`)."""
