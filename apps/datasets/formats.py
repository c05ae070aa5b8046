"""The files of a dataset version: TRL's conversational formats as Arrow schemas, and the
JSONL → Parquet conversion (Arrow's streaming JSON reader, block by block: the build never holds
a split in memory).

- SFT: `{"messages": [{"role", "content"}, ...]}` (the last message is the assistant's reply)
- DPO: `{"prompt": [...], "chosen": [assistant], "rejected": [assistant]}`
- KTO: `{"prompt": [...], "completion": [assistant], "label": bool}`

Rows carry only these columns, exactly as TRL's trainers expect them; each row's lineage
(quadrant, source event ids) is in the version's manifest.jsonl, line for line."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES = pa.list_(MESSAGE)

SCHEMAS: dict[str, pa.Schema] = {
    "sft": pa.schema([("messages", MESSAGES)]),
    "dpo": pa.schema([("prompt", MESSAGES), ("chosen", MESSAGES), ("rejected", MESSAGES)]),
    "kto": pa.schema([("prompt", MESSAGES), ("completion", MESSAGES), ("label", pa.bool_())]),
}

SPLITS = ("train", "test")
FORMATS = ("jsonl", "parquet")


def jsonl_to_parquet(
    src: Path, dst: Path, kind: str, *, longest_line: int = 0, row_group: int = 16384
) -> int:
    """Convert SRC (JSONL rows of KIND) to Parquet at DST; return the rows written.

    Read in blocks of 1 MB (or of LONGEST_LINE, the longest row in bytes, when over that: a
    block must hold a whole row) on this thread: bigger blocks and the reader's threads only
    cost memory, a few hundred MB at a million rows. Written in row groups of ROW_GROUP rows."""
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    schema = SCHEMAS[kind]
    rows = 0
    with pq.ParquetWriter(dst, schema, compression="zstd") as writer:
        if src.stat().st_size == 0:
            writer.write_table(schema.empty_table())
            return 0
        reader = pj.open_json(
            src,
            read_options=pj.ReadOptions(
                block_size=max(1 << 20, 2 * longest_line + 2), use_threads=False
            ),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="error"
            ),
        )
        pending: list[pa.RecordBatch] = []
        for batch in reader:
            pending.append(batch)
            rows += batch.num_rows
            if sum(b.num_rows for b in pending) >= row_group:
                writer.write_table(pa.Table.from_batches(pending))
                pending = []
        if pending:
            writer.write_table(pa.Table.from_batches(pending))
    return rows
