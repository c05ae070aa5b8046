"""Open WebUI: a connector that pulls a server's feedback export on a schedule (`client.py`
speaks to the server, `services.py` pulls incrementally). The Action function that forwards
each rating as it is given lives in apps/peers/openwebui/plugin/ (plain Python, loaded by Open WebUI)."""
