"""The original facade, reproduced from its observed contract (see the project's record of the
original system): Flask; a fresh random UUID (v4) for every POST; `LogMessage` retried by
tenacity, three attempts in all with exponential back-off of 4 to 10 s; the same routes,
answers and status strings. It stands in front of the Rust logging and messages services in
the test beside it, to show the Rust logging is a drop-in for the original's.

Run:  LOGGING_ADDR=127.0.0.1:8081 MESSAGES_URL=http://127.0.0.1:8082 PORT=8080 \\
      python original_facade.py
(it needs logging_pb2 / logging_pb2_grpc on PYTHONPATH, generated from proto/logging.proto).
"""

import os
import uuid

import grpc
import requests
from flask import Flask, jsonify, request
from tenacity import retry, stop_after_attempt, wait_exponential

import logging_pb2
import logging_pb2_grpc

LOGGING_ADDR = os.environ.get("LOGGING_ADDR", "127.0.0.1:8081")
MESSAGES_URL = os.environ.get("MESSAGES_URL", "http://127.0.0.1:8082")

app = Flask(__name__)
channel = grpc.insecure_channel(LOGGING_ADDR)
stub = logging_pb2_grpc.LoggingServiceStub(channel)


def print_attempt(retry_state):
    print(f"attempt {retry_state.attempt_number} failed: {retry_state.outcome.exception()}", flush=True)


@retry(
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=1, min=4, max=10),
    after=print_attempt,
    reraise=True,
)
def log_message(message_id, message):
    # The same id on every attempt.
    return stub.LogMessage(logging_pb2.LogRequest(id=message_id, message=message))


@app.route("/send_message", methods=["POST"])
def send_message():
    data = request.get_json(silent=True) or {}
    message = data.get("message")
    if not message:
        return jsonify({"error": "No message provided"}), 400
    message_id = str(uuid.uuid4())
    try:
        response = log_message(message_id, message)
    except grpc.RpcError as error:
        return jsonify({"error": f"Logging service error: {error.details()}"}), 500
    if response.status == "Duplicate message ignored":
        return jsonify({"id": message_id, "status": "duplicate", "message": response.status})
    return jsonify({"id": message_id, "status": "success", "message": response.status})


@app.route("/get_messages", methods=["GET"])
def get_messages():
    try:
        logged = stub.GetMessages(logging_pb2.Empty())
    except grpc.RpcError as error:
        return jsonify({"error": f"Service error: {error.details()}"}), 500
    try:
        from_service = requests.get(f"{MESSAGES_URL}/get_message", timeout=5).text
    except requests.RequestException as error:
        from_service = f"Messages service error: {error}"
    return jsonify({"logged_messages": list(logged.messages), "message_from_service": from_service})


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8080")))
