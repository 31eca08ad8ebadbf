"""The Firestore backend (``firestore://project-id?emulator_host=host:port``)."""
