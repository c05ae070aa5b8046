"""Langfuse-compatible endpoints: `POST /api/public/scores` and `POST /api/public/ingestion`
(plus what Langfuse clients call beside them), so that LibreChat, Dify and anything else that
sends Langfuse scores can send them to Sinkhole instead. See apps/peers/langfuse/guide.md."""
