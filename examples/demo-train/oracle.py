"""A scripted teacher behind an OpenAI-compatible streaming endpoint.

`dsagent run --api` drives it like any model server, so the training trajectories come from the real
agent loop: the real system prompt, tool definitions, tool outputs (calculator, corpus search/open,
shell) and message shapes. The teacher knows each task's answer but reads ids, paths and values from
the tool results it is shown, exactly as the model will have to. When it answers, it records the
finished conversation (the request's messages and tools plus its final message).
"""
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Teacher:
    def __init__(self, tasks, record):
        self.by_question = {t["question"]: t for t in tasks}
        self.record = record  # callable(task, conversation dict) or None when the teacher gives up
        self.lock = threading.Lock()

    def reply(self, body):
        msgs = body["messages"]
        user = next(m["content"] for m in msgs if m["role"] == "user")
        task = self.by_question.get(user)
        if task is None:
            return None, "I cannot help with that.", []
        step = sum(1 for m in msgs if m["role"] == "assistant")
        last = msgs[-1]["content"] if msgs[-1]["role"] == "tool" else ""
        out = getattr(self, "step_" + task["type"])(task, step, last)
        if out is None:  # the tools did not show what the task needs: drop the trajectory
            with self.lock:
                self.record(task, None)
            return "The tools did not give the answer.", "Explanation: not found\nExact Answer: unknown\nConfidence: 0%", []
        reasoning, content, calls = out
        if not calls:
            conv = {"tools": body.get("tools", []),
                    "messages": msgs + [{"role": "assistant", "reasoning_content": reasoning, "content": content}]}
            with self.lock:
                self.record(task, conv)
        return reasoning, content, calls

    @staticmethod
    def answer(expl, value, conf):
        return f"Explanation: {expl}\nExact Answer: {value}\nConfidence: {conf}%"

    def step_arith(self, t, step, last):
        e = t["expression"]
        if step == 0:
            return (f"The user asks for {e}. I will use the calculator to get the exact value.", "",
                    [("calculator", {"expression": e})])
        if last.strip() != t["answer"]:
            return None
        r = last.strip()
        return (f"The calculator returned {r}.", self.answer(f"The calculator evaluated {e} = {r}.", r, 100), [])

    def step_lookup(self, t, step, last):
        ent = t["entity"]
        if step == 0:
            return (f"I need to find {ent} in the corpus. I will search for it.", "", [("search", {"query": ent, "topn": 3})])
        if step == 1:
            m = re.search(r"【(\d+)†" + re.escape(ent) + "†", last)
            if not m:
                return None
            i = m.group(1)
            return (f"Result {i} is the page about {ent}. I will open it.", "", [("open", {"id": int(i)})])
        if step == 2:
            value = t["answer"]
            line = next((ln for ln in last.splitlines() if value in ln and re.match(r"L\d+:", ln)), None)
            if line is None:
                return None
            ln, text = line.split(":", 1)
            return (f"{ln} says: {text.strip()} So the answer is {value}.",
                    self.answer(f"The page about {ent} says: {text.strip()}", value, 90), [])
        return None

    def step_shell(self, t, step, last):
        kw, attr = t["keyword"], t["attr"]
        if step == 0:
            return (f"I will look for the file that mentions project {kw}.", "",
                    [("shell", {"command": f"grep -rl {kw} ."})])
        if step == 1:
            paths = [p for p in last.splitlines() if p.startswith("./")]
            if len(paths) != 1:
                return None
            return (f"The file is {paths[0]}. I will read it.", "", [("shell", {"command": f"cat {paths[0]}"})])
        if step == 2:
            line = next((ln for ln in last.splitlines() if ln.startswith(attr + ": ")), None)
            if line is None or line.split(": ", 1)[1] != t["answer"]:
                return None
            value = line.split(": ", 1)[1]
            return (f"The file says {line}.", self.answer(f"The file for project {kw} says {line}.", value, 95), [])
        return None


def make_handler(teacher):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(n))
            reasoning, content, calls = teacher.reply(body)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()

            def send(delta, finish=None, usage=None):
                chunk = {"id": "x", "object": "chat.completion.chunk", "model": "teacher",
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                if usage:
                    chunk["usage"] = usage
                self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

            send({"role": "assistant", "reasoning_content": reasoning or ""})
            if content:
                send({"content": content})
            for i, (name, args) in enumerate(calls):
                send({"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                      "function": {"name": name, "arguments": json.dumps(args)}}]})
            send({}, "tool_calls" if calls else "stop", {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return Handler


def serve(teacher, port=0):
    srv = ThreadingHTTPServer(("127.0.0.1", port), make_handler(teacher))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv
