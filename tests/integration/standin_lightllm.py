"""StandInLightLLMServer: a stand-in for LightLLM's api_server, NOT LightLLM.

It is a real HTTP server on 127.0.0.1 in its own process that speaks the same JSON shapes as
ModelTC/lightllm (lightllm/server/api_http.py, api_lightllm.py): GET/HEAD /health, POST /generate,
POST /generate_stream (``data:{json}\\n\\n`` events, one per token, chunked). It accepts the
api_server flags benchbench passes, so the exact argv can be launched through a shim package.
It computes nothing real: token i is id 1000+i with text " t{i}"; prompt_tokens is
``len(inputs) + 256 * images`` so tests can check the value travels through.

It behaves like the LightLLM version named by STANDIN_LIGHTLLM_VERSION (read in each version's
api_cli.py / api_start.py / api_http.py / httpserver; see benchbench/backends/lightllm/versions.py):
  v1.1.0  --enable_multimodal; errors {"message"} with HTTP 417; skip_special_tokens defaults True
  v1.2.0  no --enable_multimodal (argparse prefix-matches it to --enable_multimodal_url_cache,
          which then turns the URL cache on); errors {"error": {...}} with HTTP 400 (the real
          one also shrinks images over 3,686,400 px; the stand-in tiles nothing, so benchbench's
          prediction of that is unit-tested instead)
  main    as v1.2.0, plus --disable_image_resize, a per-request disable_prompt_cache, error
          events inside a started stream, and skip_special_tokens defaulting to False
All versions exit with a ValueError when --visual_infer_batch_size is not a multiple of
--visual_dp, and keep two caches a second hit can see: the prompt (radix) cache (off with
--disable_dynamic_prompt_cache, or per request on main) and the image-embedding cache keyed on
the image's md5 (no switch). A miss costs STANDIN_PREFILL_S / STANDIN_IMAGE_ENCODE_S before the
first token; a hit costs nothing.

Behaviour switches (environment):
  STANDIN_LIGHTLLM_VERSION  v1.1.0 (default), v1.2.0 or main
  STANDIN_ERROR_AFTER_TOKENS  (main) send an error event after this many tokens
  STANDIN_SPECIAL_LAST   the last token is the special token "</s>", whose text is dropped when
                         skip_special_tokens is in effect (default: True before main, False on main)
  STANDIN_RECORD         file to write {"argv", "env", "args"} to at start and append request bodies to
  STANDIN_EXIT_CODE      exit with this code at start, after printing a failure line
  STANDIN_NEVER_HEALTHY  /health always answers 503
  STANDIN_HEALTHY_AFTER_S  /health answers 503 until this many seconds after start
  STANDIN_SPAWN_CHILD    start a long-sleeping child process (as LightLLM's workers are)
  STANDIN_TOKEN_DELAY_S  pause before each streamed token
  STANDIN_EOS_AFTER      without ignore_eos, stop after this many tokens with finish_reason "stop"
  STANDIN_HOLD_UNTIL_IN_FLIGHT  hold each request's first token (up to 10 s) until this many requests
                         have been in flight at once, so a test sees a concurrent client as concurrent
Requests are served on threads, each at once; a recorded request body carries ``in_flight``, the
requests in progress (itself included) when it arrived.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENV_KEYS = ("INTERNVL_IMAGE_LENGTH", "LIGHTLLM_INTERNVL_IMAGE_LENGTH", "LOADWORKER", "LIGHTLLM_LOADWORKER")


VERSION = os.environ.get("STANDIN_LIGHTLLM_VERSION", "v1.1.0")
SPECIAL_TOKEN = "</s>"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lightllm.server.api_server (stand-in)")  # abbreviations allowed, as upstream
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--tp", type=int, default=1)
    parser.add_argument("--mem_fraction", type=float, default=0.9)
    parser.add_argument("--max_req_total_len", type=int, default=16384)
    parser.add_argument("--visual_infer_batch_size", type=int, default=1)
    parser.add_argument("--cache_capacity", type=int, default=200)
    parser.add_argument("--visual_dp", type=int, default=1)
    parser.add_argument("--visual_tp", type=int, default=1)
    parser.add_argument("--trust_remote_code", action="store_true")
    parser.add_argument("--disable_cudagraph", action="store_true")
    parser.add_argument("--disable_dynamic_prompt_cache", action="store_true")
    if VERSION == "v1.1.0":
        parser.add_argument("--enable_multimodal", action="store_true")
    else:
        parser.add_argument("--enable_multimodal_url_cache", action="store_true")
    if VERSION == "main":
        parser.add_argument("--disable_image_resize", action="store_true")
    args = parser.parse_args(argv)
    if args.visual_infer_batch_size % args.visual_dp:
        print(f"ValueError: visual_infer_batch_size ({args.visual_infer_batch_size}) must be a multiple of "
              f"visual_dp ({args.visual_dp})", flush=True)  # fmt: skip
        sys.exit(1)
    return args


class StandInLightLLMServer(ThreadingHTTPServer):
    """The stand-in server: LightLLM's endpoints and shapes, fake tokens."""

    daemon_threads = True

    def __init__(self, host: str, port: int, record_path: str | None, args: argparse.Namespace):
        super().__init__((host, port), _Handler)
        self.started = time.monotonic()
        self.record_path = record_path
        self.args = args
        self.seen_prompts: set[str] = set()
        self.seen_images: set[str] = set()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.hold_until = int(os.environ.get("STANDIN_HOLD_UNTIL_IN_FLIGHT", "0"))
        self.released = threading.Event()

    def arrived(self, entry: dict) -> None:
        """One more request in progress; recorded with the count."""
        with self.lock:
            self.in_flight += 1
            self.record({**entry, "in_flight": self.in_flight})
            if self.in_flight >= self.hold_until:
                self.released.set()

    def left(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def cache_misses_cost_s(self, prompt: str, images: list, parameters: dict) -> float:
        """What this request pays before its first token for what the caches did not hold."""
        cost = 0.0
        for image in images:
            digest = hashlib.md5(base64.b64decode(image["data"])).hexdigest()
            if digest not in self.seen_images:
                self.seen_images.add(digest)
                cost += float(os.environ.get("STANDIN_IMAGE_ENCODE_S", "0"))
        key = prompt + "".join(image["data"] for image in images)
        no_prompt_cache = self.args.disable_dynamic_prompt_cache or (VERSION == "main" and parameters.get("disable_prompt_cache"))
        if no_prompt_cache or key not in self.seen_prompts:
            cost += float(os.environ.get("STANDIN_PREFILL_S", "0"))
        if not no_prompt_cache:
            self.seen_prompts.add(key)
        return cost

    def healthy(self) -> bool:
        if os.environ.get("STANDIN_NEVER_HEALTHY"):
            return False
        return time.monotonic() - self.started >= float(os.environ.get("STANDIN_HEALTHY_AFTER_S", "0"))

    def record(self, entry: dict) -> None:
        if self.record_path:
            with open(self.record_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as uvicorn does: small writes leave at once
    server: StandInLightLLMServer

    def do_GET(self) -> None:
        if self.path in ("/health", "/healthz"):
            ok = self.server.healthy()
            self._json(200 if ok else 503, {"message": "Ok" if ok else "Error"})
        else:
            self._json(404, {"detail": "Not Found"})

    def do_HEAD(self) -> None:
        self.send_response(200 if self.server.healthy() else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.arrived({"path": self.path, "body": body})
        try:
            self._answer(body)
        finally:
            self.server.left()

    def _answer(self, body: dict) -> None:
        try:
            prompt, parameters, images = _validate(body)
        except (KeyError, TypeError, ValueError) as exc:
            self._refuse(str(exc))
            return
        tokens = _token_count(parameters)
        prompt_tokens = len(prompt) + 256 * len(images)
        time.sleep(self.server.cache_misses_cost_s(prompt, images, parameters))
        self.server.released.wait(timeout=10)
        if self.path == "/generate":
            self._json(200, _generate_answer(tokens, parameters, prompt_tokens))
        elif self.path == "/generate_stream":
            self._stream(tokens, parameters, prompt_tokens)
        else:
            self._json(404, {"detail": "Not Found"})

    def _refuse(self, message: str) -> None:
        if VERSION == "v1.1.0":
            self._json(417, {"message": message})  # what api_http.py answered on any exception
        else:
            self._json(400, {"error": {"message": message, "type": "BadRequestError", "param": None, "code": 400}})

    def _stream(self, tokens: int, parameters: dict, prompt_tokens: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        delay = float(os.environ.get("STANDIN_TOKEN_DELAY_S", "0"))
        error_after = int(os.environ.get("STANDIN_ERROR_AFTER_TOKENS", "-1")) if VERSION == "main" else -1
        texts = _token_texts(tokens, parameters)
        for index in range(tokens):
            if index == error_after:
                self._chunk(b'data: {"error": {"message": "stand-in: KV cache exhausted", "type": "InternalError"}}\n\n')
                break
            time.sleep(delay)
            finished = index == tokens - 1
            event = {
                "token": {"id": 1000 + index, "text": texts[index], "logprob": -0.5, "special": False,
                          "count_output_tokens": index + 1, "prompt_tokens": prompt_tokens},
                "generated_text": None,
                "finished": finished,
                "finish_reason": _finish_reason(tokens, parameters) if finished else None,
                "details": None,
            }  # fmt: skip
            self._chunk(("data:" + json.dumps(event, ensure_ascii=False) + "\n\n").encode("utf-8"))
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:
        sys.stderr.write("stand-in access: " + format % args + "\n")


def _validate(body: dict) -> tuple[str, dict, list]:
    prompt = body.pop("inputs")
    parameters = body["parameters"]  # required, as in api_lightllm.py
    images = body.get("multimodal_params", {}).get("images", [])
    for image in images:
        if image["type"] != "base64":
            raise ValueError(f"cannot read image which type is {image['type']}!")
        base64.b64decode(image["data"], validate=True)
    return prompt, parameters, images


def _token_count(parameters: dict) -> int:
    wanted = int(parameters.get("max_new_tokens", 16))
    if parameters.get("ignore_eos"):
        return wanted
    return min(wanted, int(os.environ.get("STANDIN_EOS_AFTER", wanted)))


def _token_texts(tokens: int, parameters: dict) -> list[str]:
    """Token texts; with STANDIN_SPECIAL_LAST the last is a special token, shown or skipped."""
    texts = [f" t{i}" for i in range(tokens)]
    if os.environ.get("STANDIN_SPECIAL_LAST") and texts:
        texts[-1] = "" if parameters.get("skip_special_tokens", VERSION != "main") else SPECIAL_TOKEN
    return texts


def _finish_reason(tokens: int, parameters: dict) -> str:
    return "length" if tokens == int(parameters.get("max_new_tokens", 16)) else "stop"


def _generate_answer(tokens: int, parameters: dict, prompt_tokens: int) -> dict:
    answer = {
        "generated_text": ["".join(_token_texts(tokens, parameters))],
        "count_output_tokens": tokens,
        "finish_reason": _finish_reason(tokens, parameters),
        "prompt_tokens": prompt_tokens,
    }
    if parameters.get("return_details"):
        texts = _token_texts(tokens, parameters)
        answer["tokens"] = [{"id": 1000 + i, "logprob": -0.5, "special": False, "text": texts[i]} for i in range(tokens)]
    return answer


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    record_path = os.environ.get("STANDIN_RECORD")
    if record_path:
        with open(record_path, "w", encoding="utf-8") as handle:
            handle.write(json.dumps({"argv": argv, "env": {k: os.environ.get(k) for k in ENV_KEYS}, "args": vars(args)}) + "\n")
    print(f"stand-in lightllm pid {os.getpid()} starting on {args.host}:{args.port} for {args.model_dir}", flush=True)
    if os.environ.get("STANDIN_EXIT_CODE"):
        print("stand-in: simulated start-up failure (CUDA out of memory)", flush=True)
        sys.exit(int(os.environ["STANDIN_EXIT_CODE"]))
    if os.environ.get("STANDIN_SPAWN_CHILD"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print(f"stand-in child pid {child.pid}", flush=True)
    server = StandInLightLLMServer(args.host, args.port, record_path, args)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
