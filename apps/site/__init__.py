"""The site as a whole, above every other app: the home page, the demo pages, the bootstrap of
an empty database and `manage.py serve`. It orchestrates the apps below it, so that `apps.core`
stays the floor that everything else stands on."""
