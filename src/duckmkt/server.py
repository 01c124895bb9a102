"""``duckmkt serve``: the database over the PostgreSQL wire protocol.

BI tools (Metabase, Superset, Tableau, Power BI, DBeaver) connect with their
PostgreSQL driver and can call ``score_customer`` and every other function
that ``duckmkt.scoring.register`` adds, which a client opening the file
directly never sees.

Design:

- pygwire (a sans-I/O codec) frames the messages; this module runs one
  thread per client (``socketserver.ThreadingTCPServer``) and gives each a
  DuckDB cursor of one shared database instance, so clients run queries in
  parallel and see each other's committed writes.
- Authentication is SCRAM-SHA-256 against one user and password; there is
  no TLS, so the default bind address is 127.0.0.1.
- Read-only by default: the file is opened read-only and only SELECT,
  EXPLAIN and transaction statements pass. In every mode the database runs
  with external access disabled (no file, network, ATTACH, COPY or extension
  loading) and a locked configuration, so SET cannot re-enable it.
- Logs: one id per connection and per query. Query text and parameters are
  logged at DEBUG only, because they may contain customer ids.
- SIGTERM and SIGINT stop accepting, close client connections and the
  database, and return.
"""

from __future__ import annotations

import itertools
import logging
import signal
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from pygwire import BackendConnection, ConnectionPhase
from pygwire import messages as pg
from pygwire.constants import TransactionStatus

from duckmkt import pgwire
from duckmkt.database import locked_database_error
from duckmkt.errors import DuckmktError
from duckmkt.i18n import _

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5433
DEFAULT_USER = "duckmkt"
# Seconds a client may take from connecting to finishing authentication.
AUTHENTICATION_TIMEOUT = 30.0
# Seconds the server waits for client threads to end when it stops.
SHUTDOWN_TIMEOUT = 5.0
# Rows sent per fetch from DuckDB while streaming a result.
FETCH_ROWS = 2048
_RECEIVE_BYTES = 65536


@dataclass
class ServerSettings:
    """Listening address, credentials and database options of ``serve``."""

    db: Path
    password: str = field(repr=False)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    user: str = DEFAULT_USER
    read_only: bool = True
    max_connections: int = 32
    model: str | None = None
    models_dir: Path = Path("models")
    model_name: str = "customer"


class ServerError(DuckmktError):
    """The server cannot start: a missing password, a busy port, an unreadable database."""


def open_database(settings: ServerSettings) -> duckdb.DuckDBPyConnection:
    """Open the database for serving: functions registered, external access off, configuration locked."""
    from duckmkt.scoring import register

    if not Path(settings.db).is_file():
        raise ServerError(_("Database file {path} not found; create it with 'duckmkt load'.").format(path=settings.db))
    try:
        con = duckdb.connect(
            str(settings.db), read_only=settings.read_only, config={"enable_external_access": False}
        )
    except duckdb.Error as error:
        hint = None
        if not settings.read_only:
            hint = _("If the other program only reads the file, serve it read-only by leaving out --read-write.")
        locked = locked_database_error(settings.db, error, read_only=settings.read_only, hint=hint)
        if locked is not None:
            raise locked from error
        raise ServerError(_("Could not open database {path}: {error}").format(path=settings.db, error=error)) from error

    try:
        register(con, settings.model, models_dir=settings.models_dir, name=settings.model_name)
    except DuckmktError as error:
        if settings.model is not None:
            con.close()
            raise
        # With no trained model yet the endpoint still serves the data and
        # the compiled SQL macros; only score_customer is missing.
        logger.warning(_("score_customer is not available: %s"), error)
    con.execute("set lock_configuration = true")
    return con


class Portal:
    """A bound statement of the extended protocol and, once run, its pending result."""

    def __init__(self, sql: str, parameters: list, result_formats: list[int]):
        self.sql = sql
        self.parameters = parameters
        self.result_formats = result_formats
        self.columns: list[tuple[str, int]] | None = None
        self.cursor: duckdb.DuckDBPyConnection | None = None
        self.statement: duckdb.Statement | None = None
        self.answer: pgwire.Answer | None = None
        self.n_sent = 0
        self.done = False


class ClientSession:
    """The state of one client: its cursor, prepared statements, portals and transaction."""

    def __init__(self, database: duckdb.DuckDBPyConnection, read_only: bool, connection_id: int):
        self.cursor = database.cursor()
        self.read_only = read_only
        self.connection_id = connection_id
        self.statements: dict[str, tuple[str, list[int]]] = {}
        self.portals: dict[str, Portal] = {}
        self.in_transaction = False
        self.failed_transaction = False
        self._query_ids = itertools.count(1)

    def next_query_id(self) -> str:
        return f"{self.connection_id}.{next(self._query_ids)}"

    def status(self) -> TransactionStatus:
        if self.failed_transaction:
            return TransactionStatus.ERROR_TRANSACTION
        return TransactionStatus.IN_TRANSACTION if self.in_transaction else TransactionStatus.IDLE

    def run(self, portal: Portal) -> None:
        """Run ``portal``'s SQL (one statement) and keep its result open for fetching."""
        answer = pgwire.intercept(portal.sql, self.read_only)
        if answer is not None:
            portal.answer = answer
            portal.columns = [(answer.column, pgwire.TEXT)] if answer.column else []
            return
        statements = self.cursor.extract_statements(pgwire.rewrite(portal.sql))
        if len(statements) != 1:
            raise pgwire.Rejected("42601", "send one statement per query in the extended protocol")
        statement = statements[0]
        pgwire.check_statement(statement, self.read_only)
        result = self.cursor.execute(statement.query, portal.parameters or None)
        portal.statement = statement
        portal.cursor = result
        portal.columns = [(name, pgwire.column_type(kind)) for name, kind, *_rest in (result.description or [])]
        self._track_transaction(statement)

    def _track_transaction(self, statement: duckdb.Statement) -> None:
        if statement.type != duckdb.StatementType.TRANSACTION:
            return
        word = statement.query.strip().split()[0].lower()
        if word in ("begin", "start"):
            self.in_transaction = True
        elif word in ("commit", "end", "rollback", "abort"):
            self.in_transaction = False
            self.failed_transaction = False

    def describe_statement(self, sql: str, n_parameters: int) -> list[tuple[str, int]] | None:
        """Return the result columns of ``sql`` without running it, or None when it returns no rows."""
        if pgwire.intercept(sql, self.read_only) is not None:
            answer = pgwire.intercept(sql, self.read_only)
            return [(answer.column, pgwire.TEXT)] if answer.column else None
        statements = self.cursor.extract_statements(pgwire.rewrite(sql))
        if len(statements) != 1 or statements[0].type not in (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN):
            return None
        pgwire.check_statement(statements[0], self.read_only)
        # A relation is planned lazily: its columns are known without running it.
        relation = self.cursor.sql(statements[0].query, params=[None] * n_parameters if n_parameters else None)
        return [(name, pgwire.column_type(kind)) for name, kind in zip(relation.columns, relation.types)]

    def close(self) -> None:
        try:
            self.cursor.close()
        except duckdb.Error:
            pass


class ClientHandler(socketserver.BaseRequestHandler):
    """Serve one PostgreSQL client: startup, SCRAM authentication, then queries until it leaves."""

    server: PostgresServer

    def setup(self) -> None:
        self.connection_id = self.server.next_connection_id()
        self.protocol = BackendConnection(strict=False)
        self.session: ClientSession | None = None
        self.skip_until_sync = False
        self.peer = "%s:%s" % self.client_address[:2]

    def handle(self) -> None:
        if not self.server.slots.acquire(blocking=False):
            logger.warning(_("Connection %d from %s rejected: %d connections open"), self.connection_id, self.peer, self.server.settings.max_connections)
            self._reject_startup("53300", "too many connections; try again later")
            return
        self.server.track(self.request)
        started = time.monotonic()
        try:
            self.request.settimeout(AUTHENTICATION_TIMEOUT)
            user, application = self._startup()
            if user is None:
                return
            self.request.settimeout(None)
            self.session = ClientSession(self.server.database, self.server.settings.read_only, self.connection_id)
            logger.info("Connection %d from %s: user %s, application %r", self.connection_id, self.peer, user, application)
            self._serve_queries()
        except (OSError, ConnectionError, pg_errors()) as error:
            logger.info("Connection %d from %s closed: %s", self.connection_id, self.peer, type(error).__name__)
        finally:
            if self.session is not None:
                self.session.close()
            self.server.untrack(self.request)
            self.server.slots.release()
            logger.info("Connection %d ended after %.1f s", self.connection_id, time.monotonic() - started)

    # --- I/O ---------------------------------------------------------------

    def _messages(self):
        """Yield client messages until the client closes the connection."""
        while True:
            data = self.request.recv(_RECEIVE_BYTES)
            if not data:
                return
            yield from self.protocol.receive(data)

    def _send(self, *messages) -> None:
        self.request.sendall(b"".join(self.protocol.send(message) for message in messages))

    def _error(self, sqlstate: str, message: str, severity: str = "ERROR") -> pg.ErrorResponse:
        return pg.ErrorResponse(fields={"S": severity, "V": severity, "C": sqlstate, "M": message})

    def _reject_startup(self, sqlstate: str, message: str) -> None:
        try:
            self.request.settimeout(AUTHENTICATION_TIMEOUT)
            for incoming in self._messages():
                if isinstance(incoming, (pg.SSLRequest, pg.GSSEncRequest)):
                    self.request.sendall(b"N")
                    continue
                self.request.sendall(self._error(sqlstate, message, "FATAL").to_wire())
                return
        except OSError:
            return

    # --- Startup and authentication ---------------------------------------

    def _startup(self) -> tuple[str | None, str]:
        """Negotiate and authenticate; return (user, application_name), or (None, '') when refused."""
        messages = self._messages()
        for incoming in messages:
            if isinstance(incoming, (pg.SSLRequest, pg.GSSEncRequest)):
                # No TLS or GSS encryption: the client goes on in plain text
                # (libpq's sslmode=prefer) or gives up (sslmode=require).
                self.request.sendall(self.protocol.send(pg.SSLResponse(accepted=False)))
                continue
            if isinstance(incoming, pg.CancelRequest):
                logger.info("Connection %d: cancel request ignored (queries cannot be cancelled)", self.connection_id)
                return None, ""
            if isinstance(incoming, pg.StartupMessage):
                return self._authenticate(incoming, messages)
            return None, ""
        return None, ""

    def _authenticate(self, startup: pg.StartupMessage, messages) -> tuple[str | None, str]:
        user = startup.params.get("user", "")
        application = startup.params.get("application_name", "")
        exchange = self.server.verifier.exchange()
        self._send(pg.AuthenticationSASL(mechanisms=[pgwire.SCRAM_MECHANISM]))
        try:
            initial = next(messages)
            if not isinstance(initial, pg.SASLInitialResponse) or initial.mechanism != pgwire.SCRAM_MECHANISM:
                raise pgwire.AuthenticationFailed("the client did not start SCRAM-SHA-256")
            self._send(pg.AuthenticationSASLContinue(data=exchange.first(bytes(initial.data))))
            response = next(messages)
            if not isinstance(response, pg.SASLResponse):
                raise pgwire.AuthenticationFailed("unexpected message during SCRAM")
            final = exchange.final(bytes(response.data))
            # The proof is checked before the user name, so a wrong name and
            # a wrong password look the same to the client.
            if user != self.server.settings.user:
                raise pgwire.AuthenticationFailed("unknown user")
        except (pgwire.AuthenticationFailed, StopIteration, UnicodeDecodeError) as error:
            reason = str(error) or "connection closed"
            logger.warning(_("Connection %d from %s: authentication failed for user %s (%s)"), self.connection_id, self.peer, user, reason)
            self.request.sendall(
                self._error("28P01", f'password authentication failed for user "{user}"', "FATAL").to_wire()
            )
            return None, ""

        self._send(pg.AuthenticationSASLFinal(data=final), pg.AuthenticationOk())
        parameters = {
            "server_version": pgwire.SHOW_VALUES["server_version"],
            "server_encoding": "UTF8",
            "client_encoding": "UTF8",
            "DateStyle": "ISO, MDY",
            "IntervalStyle": "postgres",
            "TimeZone": "UTC",
            "integer_datetimes": "on",
            "standard_conforming_strings": "on",
            "is_superuser": "off",
            "session_authorization": user,
            "application_name": application,
            "default_transaction_read_only": "on" if self.server.settings.read_only else "off",
        }
        self._send(
            *(pg.ParameterStatus(name=name, value=value) for name, value in parameters.items()),
            pg.BackendKeyData(process_id=self.connection_id, secret_key=b"\x00\x00\x00\x00"),
            pg.ReadyForQuery(status=TransactionStatus.IDLE),
        )
        return user, application

    # --- Queries -----------------------------------------------------------

    def _serve_queries(self) -> None:
        for incoming in self._messages():
            if isinstance(incoming, pg.Terminate):
                return
            if isinstance(incoming, pg.Query):
                self._simple_query(incoming.query_string)
            elif isinstance(incoming, pg.Sync):
                self.skip_until_sync = False
                self._send(pg.ReadyForQuery(status=self.session.status()))
            elif isinstance(incoming, pg.Flush):
                continue
            elif self.skip_until_sync:
                # After an error the extended protocol discards messages up to Sync.
                continue
            else:
                self._extended(incoming)

    def _simple_query(self, sql: str) -> None:
        session = self.session
        if not sql.strip():
            self._send(pg.EmptyQueryResponse(), pg.ReadyForQuery(status=session.status()))
            return
        try:
            answer = pgwire.intercept(sql, session.read_only)
            if answer is not None:
                texts = [sql]
            else:
                texts = [statement.query for statement in session.cursor.extract_statements(pgwire.rewrite(sql))]
        except (duckdb.Error, pgwire.Rejected) as error:
            self._fail(session.next_query_id(), error)
            self._send(pg.ReadyForQuery(status=session.status()))
            return
        for text in texts:
            portal = Portal(text, [], [])
            if not self._execute(portal, max_rows=0, describe=True):
                break
        self._send(pg.ReadyForQuery(status=session.status()))

    def _extended(self, incoming) -> None:
        session = self.session
        try:
            if isinstance(incoming, pg.Parse):
                session.statements[incoming.statement] = (incoming.query, list(incoming.param_types))
                self._send(pg.ParseComplete())
            elif isinstance(incoming, pg.Bind):
                self._bind(incoming)
                self._send(pg.BindComplete())
            elif isinstance(incoming, pg.Describe):
                self._describe(incoming)
            elif isinstance(incoming, pg.Execute):
                portal = session.portals.get(incoming.portal)
                if portal is None:
                    raise pgwire.Rejected("34000", f'portal "{incoming.portal}" does not exist')
                if not self._execute(portal, max_rows=incoming.max_rows, describe=False):
                    self.skip_until_sync = True
            elif isinstance(incoming, pg.Close):
                store = session.statements if incoming.kind == "S" else session.portals
                store.pop(incoming.name, None)
                self._send(pg.CloseComplete())
            else:
                raise pgwire.Rejected("0A000", f"{type(incoming).__name__} messages are not supported")
        except (duckdb.Error, pgwire.Rejected, ValueError, KeyError) as error:
            self._fail(session.next_query_id(), error)
            self.skip_until_sync = True

    def _bind(self, bind: pg.Bind) -> None:
        sql, types = self.session.statements.get(bind.statement, (None, []))
        if sql is None:
            raise pgwire.Rejected("26000", f'prepared statement "{bind.statement}" does not exist')
        formats = list(bind.param_formats) or [0]
        parameters = []
        for index, raw in enumerate(bind.param_values):
            binary = (formats[index] if len(formats) > 1 else formats[0]) == 1
            oid = types[index] if index < len(types) else 0
            parameters.append(pgwire.decode_parameter(raw, oid, binary))
        self.session.portals[bind.portal] = Portal(sql, parameters, list(bind.result_formats))

    def _describe(self, describe: pg.Describe) -> None:
        session = self.session
        if describe.kind == "S":
            sql, types = session.statements[describe.name]
            n_parameters = max(len(types), _count_parameters(sql))
            oids = [(types[i] if i < len(types) and types[i] else pgwire.TEXT) for i in range(n_parameters)]
            columns = session.describe_statement(sql, n_parameters)
            self._send(pg.ParameterDescription(type_oids=oids))
            self._send(self._row_description(columns, []) if columns else pg.NoData())
            return
        portal = session.portals[describe.name]
        query_id = session.next_query_id()
        self._run(portal, query_id)
        self._send(self._row_description(portal.columns, portal.result_formats) if portal.columns else pg.NoData())

    def _run(self, portal: Portal, query_id: str) -> None:
        if portal.columns is not None or portal.done:
            return
        logger.debug("Query %s: %s", query_id, portal.sql)
        started = time.monotonic()
        self.session.run(portal)
        portal.started = started
        portal.query_id = query_id

    def _execute(self, portal: Portal, *, max_rows: int, describe: bool) -> bool:
        """Run ``portal`` if needed and send its rows; return False after an error."""
        session = self.session
        query_id = getattr(portal, "query_id", None) or session.next_query_id()
        try:
            self._run(portal, query_id)
            if describe and portal.columns:
                # The simple protocol describes only statements that return rows.
                self._send(self._row_description(portal.columns, portal.result_formats))
            tag = self._send_rows(portal, max_rows)
        except (duckdb.Error, pgwire.Rejected, ValueError) as error:
            self._fail(query_id, error)
            return False
        if tag is None:
            self._send(pg.PortalSuspended())
            return True
        elapsed = time.monotonic() - getattr(portal, "started", time.monotonic())
        logger.info("Query %s: %s in %.3f s", query_id, tag, elapsed)
        self._send(pg.CommandComplete(tag=tag))
        return True

    def _send_rows(self, portal: Portal, max_rows: int) -> str | None:
        """Send up to ``max_rows`` rows (0 = all); return the command tag, or None when rows remain."""
        if portal.answer is not None:
            if portal.answer.column and not portal.done:
                self._send(pg.DataRow(columns=[portal.answer.value.encode("utf-8")]))
            portal.done = True
            return portal.answer.tag if not portal.answer.column else "SHOW"

        statement = portal.statement
        changes = statement.type in (duckdb.StatementType.INSERT, duckdb.StatementType.UPDATE, duckdb.StatementType.DELETE)
        if changes:
            rows = portal.cursor.fetchall()
            portal.done = True
            return pgwire.command_tag(statement, int(rows[0][0]) if rows else 0)

        if not portal.columns:
            # A statement without a result (BEGIN, or DDL in read-write mode)
            # is read to the end so the cursor is free for the next one.
            _drain(portal.cursor)
            portal.done = True
            return pgwire.command_tag(statement, 0)

        encoders = self._encoders(portal)
        sent = 0
        while not portal.done:
            wanted = FETCH_ROWS if max_rows == 0 else min(FETCH_ROWS, max_rows - sent)
            rows = portal.cursor.fetchmany(wanted)
            if len(rows) < wanted:
                portal.done = True
            if rows:
                self.request.sendall(b"".join(self.protocol.send(pg.DataRow(columns=encode(row, encoders))) for row in rows))
                sent += len(rows)
                portal.n_sent += len(rows)
            if max_rows and sent >= max_rows and not portal.done:
                return None
        return pgwire.command_tag(statement, portal.n_sent)

    def _encoders(self, portal: Portal) -> list:
        formats = portal.result_formats or [0]
        encoders = []
        for index, (_name, oid) in enumerate(portal.columns or []):
            binary = (formats[index] if len(formats) > 1 else formats[0]) == 1
            encoder = pgwire.encode_binary if binary else pgwire.encode_text
            encoders.append((encoder, oid))
        return encoders

    def _row_description(self, columns, result_formats: list[int]) -> pg.RowDescription:
        formats = result_formats or [0]
        return pg.RowDescription(
            fields=[
                pg.FieldDescription(
                    name=name,
                    type_oid=oid,
                    type_size=-1,
                    type_modifier=-1,
                    format_code=formats[index] if len(formats) > 1 else formats[0],
                )
                for index, (name, oid) in enumerate(columns)
            ]
        )

    def _fail(self, query_id: str, error: Exception) -> None:
        session = self.session
        if isinstance(error, pgwire.Rejected):
            code, message = error.sqlstate, error.message
        elif isinstance(error, duckdb.Error):
            code, message = pgwire.sqlstate(error), str(error)
        else:
            code, message = "22P02", str(error)
        if session.in_transaction:
            session.failed_transaction = True
        # The message may quote values from the query, so it is logged at DEBUG only.
        logger.warning(_("Query %s failed: SQLSTATE %s (%s)"), query_id, code, type(error).__name__)
        logger.debug("Query %s error: %s", query_id, message)
        self._send(self._error(code, message))


def _drain(cursor: duckdb.DuckDBPyConnection) -> None:
    try:
        cursor.fetchall()
    except duckdb.InvalidInputException:
        # Raised when the statement left no result set to read.
        pass


def encode(row: tuple, encoders: list) -> list[bytes | None]:
    return [None if value is None else encoder(value, oid) for value, (encoder, oid) in zip(row, encoders)]


def _count_parameters(sql: str) -> int:
    import re

    numbers = [int(number) for number in re.findall(r"\$(\d+)", sql)]
    return max(numbers, default=0)


def pg_errors() -> tuple[type[Exception], ...]:
    """Return the pygwire exceptions raised for a malformed message stream."""
    from pygwire import ProtocolError, PygwireError

    return (ProtocolError, PygwireError)


class PostgresServer(socketserver.ThreadingTCPServer):
    """The listening socket; one ClientHandler thread per client."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, settings: ServerSettings, database: duckdb.DuckDBPyConnection):
        self.settings = settings
        self.database = database
        self.verifier = pgwire.ScramVerifier(settings.password)
        self.slots = threading.BoundedSemaphore(settings.max_connections)
        self._ids = itertools.count(1)
        self._ids_lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._sockets_lock = threading.Lock()
        super().__init__((settings.host, settings.port), ClientHandler)

    def next_connection_id(self) -> int:
        with self._ids_lock:
            return next(self._ids)

    def track(self, client: socket.socket) -> None:
        with self._sockets_lock:
            self._sockets.add(client)

    def untrack(self, client: socket.socket) -> None:
        with self._sockets_lock:
            self._sockets.discard(client)

    def wait_for_clients(self, timeout: float) -> None:
        """Wait until every client thread has untracked its socket, at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._sockets_lock:
                if not self._sockets:
                    return
            time.sleep(0.05)
        logger.warning(_("Client connections still open after %.0f s; closing the database anyway"), timeout)

    def close_clients(self) -> int:
        """Shut down every client socket so its thread ends; return how many there were."""
        with self._sockets_lock:
            clients = list(self._sockets)
        for client in clients:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(clients)


def serve(settings: ServerSettings, *, ready: threading.Event | None = None) -> None:
    """Serve ``settings.db`` until SIGTERM or SIGINT; ``ready`` is set once the port is listening."""
    if not settings.password:
        raise ServerError(_("No password set; the server requires password authentication."))
    database = open_database(settings)
    try:
        server = PostgresServer(settings, database)
    except OSError as error:
        database.close()
        raise ServerError(
            _("Could not listen on {host}:{port}: {error}; choose another port with --port.").format(
                host=settings.host, port=settings.port, error=error
            )
        ) from error

    def stop(signum, _frame) -> None:
        logger.info("Received %s; stopping", signal.Signals(signum).name)
        # shutdown() waits for serve_forever() to return, so it runs in another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    host, port = server.server_address[:2]
    logger.info(
        "Serving %s on %s:%d (%s, user %s)", settings.db, host, port, "read-only" if settings.read_only else "read-write", settings.user
    )
    if ready is not None:
        ready.set()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        n_open = server.close_clients()
        server.wait_for_clients(SHUTDOWN_TIMEOUT)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        database.close()
        logger.info("Stopped; closed %d client connections", n_open)
