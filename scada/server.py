"""The gateway's OPC-UA face: an asyncua server holding the readings and the operator methods.

Shell. ``OpcuaGateway`` is an async context manager. Namespace ``ScadaConfig.namespace``,
string NodeIds equal to the slash path (``Interlock/State``, ``Sources/pump-1/Score``), under
a top object "Tripwire" with one object per path segment. ``publish`` writes a snapshot
(only values that changed) with a quality per value: good -> Good, stale ->
UncertainLastUsableValue, no_data -> BadWaitingForInitialData.

Operator object ``Tripwire/Operator`` with methods, each answering (Ok: Boolean, Detail: String):
    Reset(token)   Trip(reason)   Acknowledge(token)   Inhibit(token, seconds: Double)
A method call whose forward fails answers a Bad status instead: BadCommunicationError
(interlock unreachable), BadNotImplemented (the interlock does not know the command),
BadInvalidArgument. A refusal by the interlock (wrong token, cause not cleared) is a Good
call with Ok = false and the interlock's words in Detail.

Users (``require_user``): anonymous sessions may read, browse and subscribe but not call
methods or write; a session that names the configured username and password may call. The
check is asyncua's: its user manager maps the session to a role at activation and a
permission ruleset refuses a CallRequest from the anonymous role with BadUserAccessDenied.
Security policy None on loopback: the password crosses the socket in clear, so outside
loopback a deployment must add an encrypted policy (server certificate) first.
Shell only: no interlock rule and no value computation here (view.py and commands.py).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from asyncua import ua
from asyncua.crypto.permission_rules import SimpleRoleRuleset, User, UserRole
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaError

from scada.commands import Outcome
from scada.errors import GatewayStartError
from scada.view import NO_DATA, Kind, Reading
from tripwire.config import ScadaConfig

if TYPE_CHECKING:
    from asyncua.common.node import Node
    from asyncua.server.internal_server import InternalServer

ROOT = "Tripwire"
OPERATOR = "Operator"

# method name -> its input arguments (name, type); the forwarder gets them in this order
METHODS: dict[str, tuple[tuple[str, int], ...]] = {
    "Reset": (("token", ObjectIds.String),),
    "Trip": (("reason", ObjectIds.String),),
    "Acknowledge": (("token", ObjectIds.String),),
    "Inhibit": (("token", ObjectIds.String), ("seconds", ObjectIds.Double)),
}

Forward = Callable[[str, list[Any]], Awaitable[Outcome]]

_VARIANT: dict[Kind, ua.VariantType] = {
    "string": ua.VariantType.String, "bool": ua.VariantType.Boolean,
    "uint32": ua.VariantType.UInt32, "uint64": ua.VariantType.UInt64,
    "double": ua.VariantType.Double, "string_array": ua.VariantType.String,
}
_EMPTY: dict[Kind, Any] = {"string": "", "bool": False, "uint32": 0, "uint64": 0,
                           "double": 0.0, "string_array": []}
_QUALITY = {"good": StatusCodes.Good, "stale": StatusCodes.UncertainLastUsableValue,
            "no_data": StatusCodes.BadWaitingForInitialData}
_BAD = {"unreachable": StatusCodes.BadCommunicationError,
        "not_supported": StatusCodes.BadNotImplemented,
        "invalid_argument": StatusCodes.BadInvalidArgument,
        "access_denied": StatusCodes.BadUserAccessDenied}


def _nid(identifier: str | int, ns: int = 0) -> ua.NodeId:
    # asyncua annotates the identifier as its wrapper classes (ua.String, ua.Int32), yet takes
    # and means plain str and int, which is what it passes itself.
    return ua.NodeId(identifier, ns)  # type: ignore[arg-type]


def _status(code: int) -> ua.StatusCode:
    # asyncua annotates the value as ua.UInt32 while its own StatusCodes constants are plain int.
    return ua.StatusCode(code)  # type: ignore[arg-type]


class ConfiguredUsers(UserManager):
    """asyncua user manager: anonymous -> Anonymous role; the configured user -> User role."""

    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = password

    def get_user(self, iserver: InternalServer, username: str | None = None,
                 password: str | None = None, certificate: Any = None) -> User | None:
        if not username:
            return User(role=UserRole.Anonymous)
        same_name = hmac.compare_digest(username.encode(), self._username.encode())
        same_pw = hmac.compare_digest((password or "").encode(), self._password.encode())
        return User(role=UserRole.User, name=username) if same_name and same_pw else None


class ReadOnlyAnonymous(SimpleRoleRuleset):
    """asyncua's role ruleset, with anonymous sessions allowed what a user may, bar Call and Write."""

    DENIED = frozenset({_nid(ObjectIds.CallRequest_Encoding_DefaultBinary),
                        _nid(ObjectIds.WriteRequest_Encoding_DefaultBinary)})

    def check_validity(self, user: User, action_type_id: ua.NodeId, body: Any) -> bool:
        if user.role is UserRole.Anonymous:
            if action_type_id in self.DENIED:
                return False
            user = User(role=UserRole.User)
        # asyncua's SimpleRoleRuleset is unannotated
        allowed: bool = super().check_validity(user, action_type_id, body)  # type: ignore[no-untyped-call]
        return allowed


class OpcuaGateway:
    """``async with OpcuaGateway(cfg.scada, paths, forward) as gw: await gw.publish(snap)``."""

    def __init__(self, cfg: ScadaConfig, nodes: tuple[tuple[str, Kind], ...], forward: Forward) -> None:
        self._cfg = cfg
        self._nodes = nodes
        self._forward = forward
        self._server: Server | None = None
        self._ns = 0
        self._shown: dict[str, Reading] = {}
        self._kinds = dict(nodes)

    @property
    def endpoint(self) -> str:
        return self._cfg.endpoint

    async def _folder(self, parents: dict[str, Node], path: str) -> Node:
        if path in parents:
            return parents[path]
        head, _, leaf = path.rpartition("/")
        parent = await self._folder(parents, head)
        parents[path] = await parent.add_object(_nid(path, self._ns), leaf)
        return parents[path]

    async def _build(self, server: Server) -> None:
        self._ns = await server.register_namespace(self._cfg.namespace)
        root = await server.nodes.objects.add_object(_nid(ROOT, self._ns), ROOT)
        parents: dict[str, Node] = {"": root}
        for path, kind in self._nodes:
            head, _, leaf = path.rpartition("/")
            parent = await self._folder(parents, head)
            await parent.add_variable(_nid(path, self._ns), leaf, _EMPTY[kind], varianttype=_VARIANT[kind])
            await server.write_attribute_value(_nid(path, self._ns), self._datavalue(kind, NO_DATA))
        operator = await self._folder(parents, OPERATOR)
        outputs = [self._argument("ok", ObjectIds.Boolean), self._argument("detail", ObjectIds.String)]
        for name, args in METHODS.items():
            inputs = [self._argument(a, t) for a, t in args]
            await operator.add_method(_nid(f"{OPERATOR}/{name}", self._ns), name,
                                      self._method(name, len(args)), inputs, outputs)

    @staticmethod
    def _argument(name: str, type_id: int) -> ua.Argument:
        arg = ua.Argument()
        arg.Name = name
        arg.DataType = _nid(type_id)
        arg.ValueRank = -1
        arg.Description = ua.LocalizedText(name)
        return arg

    def _method(self, name: str, n_args: int) -> Callable[..., Awaitable[Any]]:
        async def call(parent: ua.NodeId, *args: ua.Variant) -> Any:
            if len(args) != n_args:
                return _status(StatusCodes.BadArgumentsMissing)
            result = await self._forward(name, [a.Value for a in args])
            if result.status in _BAD:
                return _status(_BAD[result.status])
            return [ua.Variant(result.ok, ua.VariantType.Boolean),
                    ua.Variant(result.detail, ua.VariantType.String)]
        return call

    @staticmethod
    def _datavalue(kind: Kind, reading: Reading) -> ua.DataValue:
        value = _EMPTY[kind] if reading.value is None else reading.value
        variant = ua.Variant(value, _VARIANT[kind])
        return ua.DataValue(variant, StatusCode=_status(_QUALITY[reading.quality]))

    async def publish(self, snapshot: dict[str, Reading]) -> int:
        """Write the readings that changed; how many were written."""
        server = self._server
        if server is None:
            raise RuntimeError("the gateway is not serving")
        written = 0
        for path, reading in snapshot.items():
            kind = self._kinds.get(path)
            if kind is None or self._shown.get(path) == reading:
                continue
            await server.write_attribute_value(_nid(path, self._ns), self._datavalue(kind, reading))
            self._shown[path] = reading
            written += 1
        return written

    async def __aenter__(self) -> Self:
        asyncua_log = logging.getLogger("asyncua")
        if asyncua_log.level == logging.NOTSET:
            asyncua_log.setLevel(logging.ERROR)  # per-request info and warnings are noise here
        cfg = self._cfg
        users = ConfiguredUsers(cfg.username, cfg.password) if cfg.require_user else None
        server = Server(user_manager=users)
        server.disable_clock(True)
        try:
            await server.init()
            server.set_endpoint(cfg.endpoint)
            server.set_server_name("Tripwire SCADA gateway")
            # ReadOnlyAnonymous inherits asyncua's unannotated SimpleRoleRuleset.__init__
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity],
                                       permission_ruleset=ReadOnlyAnonymous() if users else None)  # type: ignore[no-untyped-call]
            if users is not None:
                server.set_identity_tokens([ua.AnonymousIdentityToken, ua.UserNameIdentityToken])
            await self._build(server)
            await server.start()
        except (OSError, RuntimeError, UaError, ValueError) as e:
            with contextlib.suppress(Exception):
                await server.stop()
            raise GatewayStartError(f"cannot serve {cfg.endpoint}: {e}") from None
        self._server = server
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        server, self._server = self._server, None
        self._shown.clear()
        if server is not None:
            await server.stop()
