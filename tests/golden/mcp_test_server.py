"""An MCP test server over stdio for the tools tests (tests/unit/tools/test_mcp.cpp).

Built with the Python MCP SDK's high-level server (FastMCP, named MCPServer since mcp 2.0;
scripts/requirements-mcp.txt pins the version). Its tools cover the paths an MCP client must
handle: a normal result, an isError result, a call that never returns (hang) and a server
process that dies in the middle of a call (crash).

Run: .venv/bin/python tests/golden/mcp_test_server.py
"""
import os
import time

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("dsa-test")


@server.tool()
def add(a: int, b: int) -> str:
    """Add two integers."""
    return f"{a} + {b} = {a + b}"


@server.tool()
def fail(reason: str) -> str:
    """Always fails with the given reason (an isError result)."""
    raise ToolError(f"failed on purpose: {reason}")


@server.tool()
def hang(seconds: float) -> str:
    """Sleeps, blocking the server, for the given number of seconds."""
    time.sleep(seconds)
    return "woke up"


@server.tool()
def crash() -> str:
    """Kills the server process in the middle of the call."""
    os._exit(3)


if __name__ == "__main__":
    server.run()
