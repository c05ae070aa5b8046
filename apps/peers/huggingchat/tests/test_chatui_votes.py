"""apps/peers/huggingchat/plugin/chatui_votes.py: the events it makes of a chat-ui conversation
document (as chat-ui stores it in MongoDB), checked against Sinkhole's schema."""

from __future__ import annotations

from datetime import datetime

from apps.feedback.schema import validate_event
from apps.peers.testing import load

votes = load("huggingchat/plugin/chatui_votes.py", "sinkhole_chatui_votes")

CONVERSATION = {
    "_id": "65f0c0ffee",
    "model": "meta-llama/Meta-Llama-3.1-8B-Instruct",
    "preprompt": "You are a helpful assistant.",
    "sessionId": "session-42",
    "updatedAt": datetime(2024, 5, 1, 12, 0, 0),
    "messages": [
        {"id": "u1", "from": "user", "content": "Capital of Australia?", "ancestors": []},
        {
            "id": "a1",
            "from": "assistant",
            "content": "Sydney.",
            "ancestors": ["u1"],
            "score": -1,
            "updatedAt": datetime(2024, 5, 1, 12, 1, 0),
        },
        {"id": "a2", "from": "assistant", "content": "Canberra.", "ancestors": ["u1"], "score": 1},
        {"id": "u2", "from": "user", "content": "Thanks", "ancestors": ["u1", "a2"]},
        {
            "id": "a3",
            "from": "assistant",
            "content": "You're welcome.",
            "ancestors": ["u1", "a2", "u2"],
        },
    ],
}


def test_each_voted_reply_becomes_a_rating_with_its_own_branch_of_the_conversation() -> None:
    down, up = votes.conversation_events(CONVERSATION)

    assert down["messages"] == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Capital of Australia?"},
    ]
    assert (down["response"], down["rating"], down["timestamp"]) == (
        "Sydney.",
        -1,
        "2024-05-01T12:01:00Z",
    )
    assert (up["response"], up["rating"], up["timestamp"]) == (
        "Canberra.",
        1,
        "2024-05-01T12:00:00Z",
    )
    assert up["id"] == "chatui:65f0c0ffee:a2:up" and up["rater"] == "session-42"
    assert all(validate_event(event)[1] == {} for event in (down, up))


def test_replies_without_a_vote_or_without_a_question_are_left_out() -> None:
    lonely = {
        "_id": "x",
        "messages": [{"id": "a", "from": "assistant", "content": "Hi!", "score": 1}],
    }

    assert votes.conversation_events(lonely) == []
    assert len(votes.conversation_events(CONVERSATION)) == 2
