"""Run by test_real_sdks.py inside a virtualenv that holds one major version of the Langfuse
Python SDK (2.x to 5.x), never imported by the project: it traces one chat turn with the SDK's
own API for that version, scores it the way front-ends do (a thumbs-up from the user), flushes,
and prints what it did as one JSON line. Arguments: base URL, public key, secret key, prompt,
reply, model, user."""

import json
import sys
from importlib.metadata import version

from langfuse import Langfuse

host, public_key, secret_key, prompt, reply, model, user = sys.argv[1:8]
major = int(version("langfuse").split(".")[0])
messages = [{"role": "user", "content": prompt}]
client = Langfuse(public_key=public_key, secret_key=secret_key, host=host)
checked = client.auth_check()

if major == 2:
    trace = client.trace(name="chat", user_id=user, input=messages, output=reply)
    trace.generation(name="llm", model=model, input=messages, output=reply)
    client.flush()  # the user's thumbs comes after the answer was shown
    client.score(trace_id=trace.id, name="user-feedback", value=1, data_type="BOOLEAN")
    trace_id = trace.id
else:
    from langfuse import propagate_attributes

    with client.start_as_current_observation(
        as_type="generation", name="chat", model=model, input=messages
    ) as generation:
        with propagate_attributes(user_id=user):
            generation.update(output=reply)
        trace_id = generation.trace_id
    client.flush()  # the user's thumbs comes after the answer was shown
    client.create_score(trace_id=trace_id, name="user-feedback", value=1, data_type="BOOLEAN")

client.flush()
if major >= 3:
    client.shutdown()
print(json.dumps({"major": major, "auth_check": checked, "trace_id": trace_id}))
