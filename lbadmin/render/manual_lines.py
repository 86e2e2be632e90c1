"""What a manual HAProxy line may say: an allowlist, parsed token by token.

Manual lines replace the generated body of one ``listen`` section. HAProxy runs as root while
it parses its configuration, so a line that names a file, a socket, a program, a map or Lua
makes whoever may edit manual lines root on the node (``acl a src -f FILE`` reads any file and
quotes it in the parse error; ``bind unix@PATH`` replaces any file with a socket). A list of
forbidden words cannot keep up with HAProxy's keywords, so this is the other way round: every
directive, every keyword of a ``server`` line, every action and every sample fetch and
converter must be one an administrator of a Lync-style service needs, and nothing else passes.

``manual_line_problem`` returns why a line is refused (a phrase naming the token, to follow
"Line N "), or None. Pure: no I/O; lbadmin.allowlists and the renderer both call it.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Sequence

SECTION_KEYWORDS = frozenset(
    {
        "global", "defaults", "frontend", "backend", "listen", "userlist", "peers",
        "resolvers", "mailers", "program", "http-errors", "ring", "cache", "fcgi-app",
        "crt-store", "traces", "log-forward",
    }
)  # fmt: skip
# HAProxy unquotes and unescapes a line before it parses it, so `"program"` or `\x6cisten`
# would open a section, and `$VAR` expands the environment: refused rather than interpreted.
FORBIDDEN_CHARACTERS = frozenset("\"'\\$`")
# Second line of defence, whatever the directive: words that read files, run programs, open
# sockets or reach Lua/SPOE. The allowlists below never let these through on their own.
FORBIDDEN_WORDS = frozenset(
    {
        "errorfile", "errorfiles", "errorloc", "errorloc302", "errorloc303", "file",
        "lf-file", "crt", "crt-list", "ca-file", "crl-file", "lua-load",
        "lua-load-per-thread", "external-check", "command", "server-state-file",
        "server-state-file-name", "stats", "ssl-engine", "load-server-state-from-file",
        "-f", "exec", "filter", "spoe", "use-service", "send-spoe-group", "ca-verify-file",
        "ocsp-update", "issuers-chain-path",
    }
)  # fmt: skip

_MAP_FLAGS = frozenset({"-M"})  # an ACL pattern file read as a map
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_NUMBER = re.compile(r"[0-9]{1,10}")
_TIME = re.compile(r"[0-9]{1,10}(us|ms|s|m|h|d)?")
_CALL = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_.+-]*)\(")  # 51d.all( starts with a digit
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")

# --- Sample fetches and converters ----------------------------------------------------------

FETCHES = frozenset(
    {
        "always_false", "always_true", "avg_queue", "base", "base32", "base32+src", "be_conn",
        "be_conn_free", "be_id", "be_name", "be_sess_rate", "bin", "bool", "capture.req.hdr",
        "capture.req.method", "capture.req.uri", "capture.req.ver", "capture.res.hdr",
        "capture.res.ver", "connslots", "cook", "cook_cnt", "cook_val", "date", "dst",
        "dst_conn", "dst_is_local", "dst_port", "fe_conn", "fe_id", "fe_name", "fe_sess_rate",
        "hdr", "hdr_cnt", "hdr_ip", "hdr_val", "http_first_req", "int", "ipv4", "ipv6",
        "meth", "method", "nbsrv", "path", "pathq", "query", "queue", "rand", "rdp_cookie",
        "rdp_cookie_cnt", "req.body", "req.body_len", "req.body_param", "req.body_size",
        "req.cook", "req.cook_cnt", "req.cook_val", "req.fhdr", "req.fhdr_cnt", "req.hdr",
        "req.hdr_cnt", "req.hdr_ip", "req.hdr_val", "req.hdrs", "req.len", "req.payload",
        "req.payload_lv", "req.proto_http", "req.rdp_cookie", "req.rdp_cookie_cnt",
        "req.ssl_alpn", "req.ssl_ec_ext", "req.ssl_hello_type", "req.ssl_sni", "req.ssl_st_ext",
        "req.ssl_ver", "req.ver", "req_len", "req_proto_http", "req_ssl_hello_type",
        "req_ssl_sni", "req_ssl_ver", "req_ver", "res.comp", "res.comp_algo", "res.cook",
        "res.cook_cnt", "res.cook_val", "res.fhdr", "res.hdr", "res.hdr_cnt", "res.hdr_ip",
        "res.hdr_val", "res.hdrs", "res.len", "res.payload", "res.ver", "res_ver", "scook",
        "scook_cnt", "scook_val", "shdr", "shdr_cnt", "shdr_ip", "shdr_val", "so_id", "src",
        "src_is_local", "src_port", "srv_conn", "srv_id", "srv_is_up", "srv_name", "ssl_bc",
        "ssl_c_used", "ssl_c_verify", "ssl_fc", "ssl_fc_alpn", "ssl_fc_cipher",
        "ssl_fc_has_sni", "ssl_fc_protocol", "ssl_fc_sni", "status", "str", "txn.status",
        "unique-id", "url", "url_ip", "url_param", "url_port", "urlp", "urlp_val", "var",
        "wait_end",
    }
)  # fmt: skip
# Stick-table counters: sc0_http_req_rate, src_conn_cur, sc_get_gpc0(0), …
_COUNTER_FETCH = re.compile(
    r"(sc[0-2]?|src)_(bytes_in_rate|bytes_out_rate|clr_gpc0|conn_cnt|conn_cur|conn_rate|"
    r"get_gpc0|get_gpt0|gpc0_rate|http_err_cnt|http_err_rate|http_req_cnt|http_req_rate|"
    r"inc_gpc0|kbytes_in|kbytes_out|sess_cnt|sess_rate|tracked|trackers)"
)
# An ACL criterion may add a match suffix to a fetch: hdr_beg(host), path_end, ssl_fc_sni_reg.
_ACL_SUFFIX = re.compile(r"_(beg|dir|dom|end|len|reg|sub|found|cnt|ip|val|str)$")
CONVERTERS = frozenset(
    {
        "add", "and", "b64dec", "base64", "be2dec", "be2hex", "bool", "bytes", "concat",
        "cpl", "crc32", "crc32c", "cut_crlf", "digest", "div", "djb2", "even", "field", "hex",
        "hex2i", "host_only", "http_date", "in_table", "ipmask", "json", "json_query", "len",
        "length", "lower", "ltime", "ltrim", "mod", "mul", "neg", "not", "odd", "or",
        "port_only", "regsub", "rtrim", "sdbm", "secure_memcmp", "set-var", "sha1", "sha2",
        "strcmp", "sub", "ub64dec", "ub64enc", "unset-var", "upper", "url_dec", "url_enc",
        "utime", "word", "wt6", "xor", "xxh3", "xxh32", "xxh64",
    }
)  # fmt: skip
_TABLE_CONVERTER = re.compile(r"table_[a-z0-9_]{1,32}")


def _is_fetch(name: str, *, criterion: bool = False) -> bool:
    if name in FETCHES or _COUNTER_FETCH.fullmatch(name):
        return True
    return criterion and bool(_ACL_SUFFIX.search(name)) and _is_fetch(_ACL_SUFFIX.sub("", name))


def _split_chain(expression: str) -> list[str] | None:
    """``req.hdr(host),lower`` → ["req.hdr(host)", "lower"]; None if the brackets mismatch."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(expression):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return None
        elif char == "," and depth == 0:
            parts.append(expression[start:index])
            start = index + 1
    if depth:
        return None
    parts.append(expression[start:])
    return parts


def expression_problem(expression: str, *, criterion: bool = False) -> str | None:
    """A sample expression: an allowlisted fetch, then allowlisted converters."""
    chain = _split_chain(expression)
    if chain is None or not all(chain):
        return f"has a malformed expression “{expression}”"
    for position, element in enumerate(chain):
        name = element.split("(", 1)[0]
        if position == 0:
            if not _is_fetch(name, criterion=criterion):
                return f"uses “{name}”, which is not an allowed sample fetch"
        elif name not in CONVERTERS and not _TABLE_CONVERTER.fullmatch(name):
            return f"uses “{name}”, which is not an allowed converter"
    return None


def _log_format_problem(token: str) -> str | None:
    """``%[expression]`` inside a log-format value (header values, redirects, ...)."""
    for expression in re.findall(r"%\[([^\]]*)\]", token):
        problem = expression_problem(expression)
        if problem:
            return problem
    return None


def _token_problem(token: str) -> str | None:
    """Checks every token of every line gets, whatever its place."""
    if "@" in token:
        return f"uses “{token}”: address prefixes such as unix@ or abns@ are not allowed"
    if token.lower() in FORBIDDEN_WORDS or token in _MAP_FLAGS:
        return f"uses “{token}”, which reads files, opens sockets or runs programs"
    if token.lower().startswith("lua."):
        return f"uses “{token}”: Lua is not allowed in manual lines"
    for name in _CALL.findall(token):
        if not (
            _is_fetch(name, criterion=True)
            or name in CONVERTERS
            or _TABLE_CONVERTER.fullmatch(name)
            or name in _CALL_ACTIONS
            or name in BALANCE
        ):
            return f"uses “{name}(…)”, which is not an allowed sample fetch or converter"
    return _log_format_problem(token)


# --- Conditions -----------------------------------------------------------------------------


def _acl_body_problem(words: Sequence[str]) -> str | None:
    """``criterion [flags] [values]`` of a named or an anonymous ACL: inline patterns only."""
    if not words:
        return "has an ACL without a criterion"
    problem = expression_problem(words[0], criterion=True)
    if problem:
        return problem
    rest = list(words[1:])
    while rest and rest[0].startswith("-"):
        flag = rest.pop(0)
        if flag == "--":
            break
        if flag == "-m":
            if not rest or rest.pop(0) not in _MATCH_METHODS:
                return "has “-m” without a match method (str, beg, end, sub, reg, ...)"
        elif flag not in ("-i", "-n"):
            return f"uses the ACL flag “{flag}” (only -i, -n, -m and inline patterns)"
    return None


_MATCH_METHODS = frozenset(
    {"found", "bool", "int", "ip", "bin", "len", "str", "sub", "reg", "beg", "end", "dir", "dom"}
)


def _condition_problem(words: Sequence[str]) -> str | None:
    """After ``if``/``unless``: ACL names, ``!``, ``||``/``or`` and ``{ anonymous ACLs }``."""
    if not words:
        return "has an “if” or “unless” with no condition"
    index = 0
    while index < len(words):
        word = words[index]
        if word == "{":
            try:
                end = words.index("}", index)
            except ValueError:
                return "opens an anonymous ACL “{” without closing it"
            problem = _acl_body_problem(words[index + 1 : end])
            if problem:
                return problem
            index = end + 1
            continue
        if word not in ("!", "||", "or") and not _NAME.fullmatch(word.lstrip("!")):
            return f"has “{word}” where an ACL name is expected"
        index += 1
    return None


def _split_condition(words: Sequence[str]) -> tuple[list[str], list[str] | None]:
    for index, word in enumerate(words):
        if word in ("if", "unless"):
            return list(words[:index]), list(words[index + 1 :])
    return list(words), None


def _with_condition(check: Callable[[list[str]], str | None]) -> Callable[[list[str]], str | None]:
    """A directive whose arguments may end in ``if``/``unless`` COND."""

    def checked(args: list[str]) -> str | None:
        before, condition = _split_condition(args)
        problem = check(before)
        if problem is None and condition is not None:
            problem = _condition_problem(condition)
        return problem

    return checked


# --- Directives -----------------------------------------------------------------------------


def _one_of(allowed: frozenset[str], what: str) -> Callable[[list[str]], str | None]:
    def checked(args: list[str]) -> str | None:
        if not args:
            return f"needs a {what}"
        if args[0] not in allowed:
            return f"uses the {what} “{args[0]}”, which is not allowed in manual lines"
        return None

    return checked


def _pattern(kind: re.Pattern[str], count: int, what: str) -> Callable[[list[str]], str | None]:
    def checked(args: list[str]) -> str | None:
        if len(args) != count or not all(kind.fullmatch(arg) for arg in args):
            return f"needs {what}"
        return None

    return checked


def _anything(args: list[str]) -> str | None:
    return None


OPTIONS = frozenset(
    {
        "abortonclose", "accept-invalid-http-request", "accept-invalid-http-response",
        "allbackups", "checkcache", "clitcpka", "contstats", "disable-h2-upgrade",
        "dontlog-normal", "dontlognull", "forwardfor", "h1-case-adjust-bogus-client",
        "h1-case-adjust-bogus-server", "http-buffer-request", "http-ignore-probes",
        "http-keep-alive", "http-no-delay", "http-pretend-keepalive", "http-server-close",
        "httpchk", "httpclose", "httplog", "idle-close-on-response", "independent-streams",
        "ldap-check", "log-health-checks", "log-separate-errors", "logasap", "mysql-check",
        "nolinger", "originalto", "persist", "pgsql-check", "prefer-last-server", "redis-check",
        "redispatch", "smtpchk", "socket-stats", "splice-auto", "splice-request",
        "splice-response", "srvtcpka", "ssl-hello-chk", "tcp-check", "tcp-smart-accept",
        "tcp-smart-connect", "tcpka", "tcplog",
    }
)  # fmt: skip
TIMEOUTS = frozenset(
    {
        "check", "client", "client-fin", "connect", "http-keep-alive", "http-request", "queue",
        "server", "server-fin", "tarpit", "tunnel",
    }
)  # fmt: skip
BALANCE = frozenset(
    {"first", "hash", "hdr", "leastconn", "random", "rdp-cookie", "roundrobin", "source",
     "static-rr", "uri", "url_param"}
)  # fmt: skip
# Keywords of `server` / `default-server` lines: those that take no value, and those that take
# exactly one (checked by the pattern given).
SERVER_FLAGS = frozenset(
    {
        "agent-check", "allow-0rtt", "backup", "check", "check-send-proxy", "check-ssl",
        "disabled", "enabled", "force-tlsv12", "force-tlsv13", "no-agent-check", "no-backup",
        "no-check", "no-check-ssl", "no-send-proxy", "no-send-proxy-v2", "no-ssl",
        "no-tls-tickets", "no-tlsv10", "no-tlsv11", "no-tlsv12", "no-tlsv13", "no-verifyhost",
        "non-stick", "send-proxy", "send-proxy-v2", "ssl", "stick", "tfo",
    }
)  # fmt: skip
_WORD = re.compile(r"[A-Za-z0-9_.:,/+-]{1,128}")
SERVER_OPTIONS: dict[str, re.Pattern[str]] = {
    "agent-inter": _TIME, "agent-port": _NUMBER, "alpn": _WORD, "check-alpn": _WORD,
    "check-proto": _NAME, "check-sni": _NAME, "ciphers": _WORD, "ciphersuites": _WORD,
    "cookie": _NAME, "downinter": _TIME, "error-limit": _NUMBER, "fall": _NUMBER,
    "fastinter": _TIME, "id": _NUMBER, "init-addr": re.compile(r"(libc|none)(,(libc|none))*"),
    "inter": _TIME, "max-reuse": _NUMBER, "maxconn": _NUMBER, "maxqueue": _NUMBER,
    "minconn": _NUMBER, "observe": re.compile(r"layer4|layer7"),
    "on-error": re.compile(r"fastinter|fail-check|sudden-death|mark-down"),
    "on-marked-down": re.compile(r"shutdown-sessions"),
    "on-marked-up": re.compile(r"shutdown-backup-sessions"), "pool-low-conn": _NUMBER,
    "pool-max-conn": _NUMBER, "pool-purge-delay": _TIME, "port": _NUMBER,
    "proto": _NAME, "redir": re.compile(r"https?://[A-Za-z0-9.:\[\]-]{1,255}"),
    "rise": _NUMBER, "slowstart": _TIME, "sni": _WORD,
    "ssl-max-ver": re.compile(r"SSLv3|TLSv1\.[0-3]"),
    "ssl-min-ver": re.compile(r"SSLv3|TLSv1\.[0-3]"), "track": _WORD,
    "verify": re.compile(r"none"), "weight": _NUMBER,
}  # fmt: skip


def _server_keywords_problem(words: list[str]) -> str | None:
    index = 0
    while index < len(words):
        word = words[index]
        if word in SERVER_FLAGS:
            index += 1
            continue
        pattern = SERVER_OPTIONS.get(word)
        if pattern is None:
            return f"uses the server keyword “{word}”, which is not allowed in manual lines"
        if index + 1 >= len(words) or not pattern.fullmatch(words[index + 1]):
            return f"has no valid value after “{word}”"
        if word == "sni":
            problem = expression_problem(words[index + 1])
            if problem:
                return problem
        index += 2
    return None


def _address_problem(address: str) -> str | None:
    """``ip``, ``ip:port``, ``[ipv6]``, ``[ipv6]:port``, a bare IPv6 address or a host name."""
    host, port = address, None
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                return f"has a malformed server address “{address}”"
            port = rest[1:]
    elif address.count(":") == 1:
        host, port = address.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if address.startswith("[") or not _HOSTNAME.fullmatch(host):
            return f"has “{address}” where a server address (IP or host name) is expected"
    if port is not None and not (_NUMBER.fullmatch(port) and 0 < int(port) < 65536):
        return f"has a bad port in “{address}”"
    return None


def _server(args: list[str]) -> str | None:
    if len(args) < 2 or not _NAME.fullmatch(args[0]):
        return "needs a server name and address"
    return _address_problem(args[1]) or _server_keywords_problem(args[2:])


def _cookie(args: list[str]) -> str | None:
    if not args or not _NAME.fullmatch(args[0]):
        return "needs a cookie name"
    flags = {"rewrite", "insert", "prefix", "indirect", "nocache", "postonly", "preserve",
             "httponly", "secure", "dynamic"}  # fmt: skip
    index = 1
    while index < len(args):
        if args[index] in flags:
            index += 1
        elif args[index] in ("domain", "maxidle", "maxlife", "attr") and index + 1 < len(args):
            index += 2
        else:
            return f"uses the cookie keyword “{args[index]}”, which is not allowed"
    return None


def _stick_table(args: list[str]) -> str | None:
    allowed = {"type": 1, "len": 1, "size": 1, "expire": 1, "nopurge": 0, "store": 1,
               "srvkey": 1}  # fmt: skip
    index = 0
    while index < len(args):
        arity = allowed.get(args[index])
        if arity is None:
            return f"uses the stick-table keyword “{args[index]}”, which is not allowed"
        index += 1 + arity
    return None if index == len(args) else "has a stick-table keyword without its value"


def _stick(args: list[str]) -> str | None:
    if len(args) < 2 or args[0] not in ("on", "match", "store-request", "store-response"):
        return "needs on, match, store-request or store-response and a pattern"
    problem = expression_problem(args[1])
    if problem:
        return problem
    rest = args[2:]
    if rest[:1] == ["table"]:
        if len(rest) < 2 or not _NAME.fullmatch(rest[1]):
            return "needs a table name after “table”"
        rest = rest[2:]
    return None if not rest else f"has “{rest[0]}” after the pattern"


def _acl(args: list[str]) -> str | None:
    if len(args) < 2 or not _NAME.fullmatch(args[0]):
        return "needs an ACL name and a criterion"
    return _acl_body_problem(args[1:])


_CALL_ACTIONS = frozenset({"set-var", "unset-var", "set-timeout", "sc-inc-gpc0", "sc-inc-gpc1"})
HTTP_ACTIONS = frozenset(
    {
        "add-header", "allow", "auth", "capture", "del-header", "deny", "disable-l7-retry",
        "early-hint", "normalize-uri", "redirect", "reject", "replace-header", "replace-path",
        "replace-pathq", "replace-uri", "replace-value", "return", "set-header",
        "set-log-level", "set-mark", "set-method", "set-nice", "set-path", "set-pathq",
        "set-query", "set-status", "set-timeout", "set-tos", "set-uri", "strict-mode",
        "tarpit", "track-sc0", "track-sc1", "track-sc2", "wait-for-body", "wait-for-handshake",
    }
)  # fmt: skip
TCP_ACTIONS = frozenset(
    {
        "accept", "capture", "close", "expect-proxy", "reject", "set-log-level", "set-mark",
        "set-nice", "set-tos", "silent-drop", "switch-mode", "track-sc0", "track-sc1",
        "track-sc2",
    }
)  # fmt: skip


def _action_problem(args: list[str], actions: frozenset[str]) -> str | None:
    if not args:
        return "needs an action"
    action = args[0]
    base = action.split("(", 1)[0]
    if base not in actions and base not in _CALL_ACTIONS:
        return f"uses the action “{action}”, which is not allowed in manual lines"
    if base in ("set-var", "capture", "track-sc0", "track-sc1", "track-sc2") and len(args) > 1:
        return expression_problem(args[1])
    return None


def _http_rule(args: list[str]) -> str | None:
    return _action_problem(args, HTTP_ACTIONS)


def _tcp_rule(args: list[str]) -> str | None:
    if args[:1] == ["inspect-delay"]:
        return _pattern(_TIME, 1, "a time")(args[1:])
    if not args or args[0] not in ("connection", "session", "content"):
        return "needs connection, session, content or inspect-delay"
    return _action_problem(args[1:], TCP_ACTIONS)


def _subcommand(allowed: frozenset[str]) -> Callable[[list[str]], str | None]:
    return _one_of(allowed, "sub-command")


def _log(args: list[str]) -> str | None:
    return None if args == ["global"] else "may only be “log global”"


def _capture(args: list[str]) -> str | None:
    if args[:2] in (["request", "header"], ["response", "header"]):
        args = args[2:]
    elif args[:1] == ["cookie"]:
        args = args[1:]
    else:
        return "needs request header, response header or cookie"
    if len(args) != 3 or args[1] != "len" or not _NUMBER.fullmatch(args[2]):
        return "needs a name and “len N”"
    return None


def _balance(args: list[str]) -> str | None:
    if not args:
        return "needs an algorithm"
    base = args[0].split("(", 1)[0]
    if base not in BALANCE:
        return f"uses the algorithm “{args[0]}”, which is not allowed"
    if base == "hash" and len(args) > 1:
        return expression_problem(args[1])
    return None


def _option(args: list[str]) -> str | None:
    return _one_of(OPTIONS, "option")(args)


HTTP_CHECK_STEPS = frozenset(
    {"comment", "connect", "disable-on-404", "expect", "send", "send-state", "set-var",
     "unset-var"}
)  # fmt: skip
TCP_CHECK_STEPS = frozenset(
    {"comment", "connect", "expect", "send", "send-binary", "send-binary-lf", "send-lf",
     "set-var", "unset-var"}
)  # fmt: skip
_PLAIN: Callable[[list[str]], str | None] = _anything
DIRECTIVES: dict[str, Callable[[list[str]], str | None]] = {
    "acl": _acl,
    "balance": _balance,
    "capture": _capture,
    "compression": _subcommand(frozenset({"algo", "type", "offload"})),
    "cookie": _cookie,
    "declare": _subcommand(frozenset({"capture"})),
    "default-server": _server_keywords_problem,
    "default_backend": _pattern(_NAME, 1, "a section name"),
    "description": _PLAIN,
    "force-persist": _with_condition(lambda before: None if not before else "takes a condition"),
    "fullconn": _pattern(_NUMBER, 1, "a number"),
    "hash-balance-factor": _pattern(_NUMBER, 1, "a number"),
    "hash-type": _subcommand(frozenset({"map-based", "consistent"})),
    "http-after-response": _with_condition(_http_rule),
    "http-check": _subcommand(HTTP_CHECK_STEPS),
    "http-request": _with_condition(_http_rule),
    "http-response": _with_condition(_http_rule),
    "http-reuse": _subcommand(frozenset({"never", "safe", "aggressive", "always"})),
    "http-send-name-header": _pattern(_NAME, 1, "a header name"),
    "ignore-persist": _with_condition(lambda before: None if not before else "takes a condition"),
    "log": _log,
    "max-keep-alive-queue": _pattern(_NUMBER, 1, "a number"),
    "maxconn": _pattern(_NUMBER, 1, "a number"),
    "mode": _one_of(frozenset({"http", "tcp"}), "mode"),
    "monitor": _with_condition(lambda before: None if before == ["fail"] else "needs “fail”"),
    "monitor-uri": _pattern(re.compile(r"/[A-Za-z0-9._~/-]{0,255}"), 1, "a path"),
    "option": _option,
    "persist": _subcommand(frozenset({"rdp-cookie"})),
    "rate-limit": _subcommand(frozenset({"sessions"})),
    "redirect": _with_condition(_subcommand(frozenset({"location", "prefix", "scheme"}))),
    "retries": _pattern(_NUMBER, 1, "a number"),
    "retry-on": _PLAIN,
    "server": _server,
    "stick": _with_condition(_stick),
    "stick-table": _stick_table,
    "tcp-check": _subcommand(TCP_CHECK_STEPS),
    "tcp-request": _with_condition(_tcp_rule),
    "tcp-response": _with_condition(_tcp_rule),
    "timeout": lambda args: (
        _one_of(TIMEOUTS, "timeout")(args) or _pattern(_TIME, 1, "one time value")(args[1:])
    ),
    "unique-id-format": _PLAIN,
    "unique-id-header": _pattern(_NAME, 1, "a header name"),
    "use-server": _with_condition(_pattern(_NAME, 1, "a server name")),
    "use_backend": _with_condition(_pattern(_NAME, 1, "a section name")),
}


def manual_line_problem(value: str) -> str | None:
    """Why a manual HAProxy line is refused, or None. The one definition of what a manual
    line may contain, used by the allowlist (messages for the form) and by the renderer."""
    if not isinstance(value, str) or not value.strip():
        return "is empty"
    # Cc covers \n, \r, NUL, DEL and C1 controls; Zl/Zp are Unicode line/paragraph separators.
    # Tab is plain whitespace to HAProxy.
    if any(ch != "\t" and unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value):
        return "contains a control character"
    if FORBIDDEN_CHARACTERS & set(value):
        return "contains a quote, a backslash, a backtick or $ (not allowed in manual lines)"
    # `#` starts a comment wherever it stands (no quotes or escapes are left to hide it).
    words = value.split("#", 1)[0].split()
    if not words:
        return None  # a comment line
    for word in words:
        problem = _token_problem(word)
        if problem:
            return problem
    directive, args = words[0], words[1:]
    if directive.lower() in SECTION_KEYWORDS:
        return f"starts a new “{directive}” section: manual lines must stay inside this service"
    if directive.startswith("."):
        return f"is a conditional block or directive (“{directive}”), not allowed here"
    if directive == "no" and args[:1] == ["option"]:
        directive, args = "option", args[1:]
    check = DIRECTIVES.get(directive)
    if check is None:
        return f"uses “{directive}”, which is not a directive allowed in manual lines"
    problem = check(args)
    return f"({directive}) {problem}" if problem else None
