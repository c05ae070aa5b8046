"""Run by tests/serving/test_langfuse_sdk_gateway.py inside a virtualenv that holds one major
version of the Langfuse Python SDK and the openai package, never imported by the project: a chat
turn through Sinkhole's gateway with the Langfuse OpenAI wrapper, the trace id made first and
given to both the wrapper (`trace_id=`) and the gateway (`X-Sinkhole-Trace-Id`), then the user's
thumbs-up on that trace. Prints what it did as one JSON line. Arguments: base URL, public key,
secret key, prompt, user. The keys also go to the SDK through LANGFUSE_* variables, which is
how the wrapper finds its client."""

import json
import os
import sys
import uuid
from importlib.metadata import version

host, public_key, secret_key, prompt, user = sys.argv[1:6]
os.environ.update(
    {"LANGFUSE_PUBLIC_KEY": public_key, "LANGFUSE_SECRET_KEY": secret_key, "LANGFUSE_HOST": host}
)

from langfuse import Langfuse  # noqa: E402 - after the variables the SDK reads at import
from langfuse.openai import OpenAI  # noqa: E402

major = int(version("langfuse").split(".")[0])
if major == 2:
    client = Langfuse(public_key=public_key, secret_key=secret_key, host=host)
    trace_id = str(uuid.uuid4())
else:
    from langfuse import get_client

    client = get_client()
    trace_id = client.create_trace_id()

openai = OpenAI(base_url=f"{host}/v1", api_key=secret_key)
answer = openai.chat.completions.create(
    model="production",
    messages=[{"role": "user", "content": prompt}],
    max_tokens=8,
    user=user,
    trace_id=trace_id,
    extra_headers={"X-Sinkhole-Trace-Id": trace_id},
)
if major == 2:
    from langfuse.openai import openai as patched

    patched.flush_langfuse()
    client.score(trace_id=trace_id, name="user-feedback", value=1, data_type="BOOLEAN")
else:
    client.flush()  # the user's thumbs comes after the answer was shown
    client.create_score(trace_id=trace_id, name="user-feedback", value=1, data_type="BOOLEAN")
client.flush()
if major >= 3:
    client.shutdown()
print(json.dumps({"major": major, "trace_id": trace_id, "id": answer.id, "model": answer.model}))
