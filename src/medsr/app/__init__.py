"""The web app (``medsr demo``): Streamlit page in :mod:`medsr.app.streamlit_app`, its logic in
:mod:`medsr.app.logic`."""

from pathlib import Path

APP_FILE = Path(__file__).with_name("streamlit_app.py")
"""The Streamlit script that ``medsr demo`` runs."""

__all__ = ["APP_FILE"]
