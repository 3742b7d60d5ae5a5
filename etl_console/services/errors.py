"""Domain errors. Services raise them; the web layer maps each to an HTTP status in one place."""


class DomainError(Exception):
    """Base class; str(error) is the message a user sees.

    `field` is the input field the error concerns (a form shows the message next to it), None when it
    concerns the request as a whole. A class that always concerns one field sets it as a class
    attribute; where it varies, the raise site passes field="..."."""

    field: str | None = None

    def __init__(self, *args: object, field: str | None = None) -> None:
        super().__init__(*args)
        if field is not None:
            self.field = field


class PipelineNotFound(DomainError):
    def __init__(self) -> None:
        super().__init__("Pipeline not found")


class RunNotFound(DomainError):
    def __init__(self) -> None:
        super().__init__("Run not found")


class NameTaken(DomainError):
    field = "name"

    def __init__(self) -> None:
        super().__init__("Pipeline with this name already exists")


class TargetNotAllowed(DomainError):
    field = "target_table"

    def __init__(self, target_table: str) -> None:
        super().__init__(f"target_table '{target_table}' is not allowed")


class InvalidSourceQuery(DomainError):
    """The source query is not one read-only SELECT/WITH statement."""

    field = "source_query"


class InvalidPipeline(DomainError):
    """A pipeline setting that is well-typed but not acceptable (e.g. incremental without a key);
    the raise site names the field when there is one (field="incremental_key")."""


class PipelineBusy(DomainError):
    def __init__(self, message: str = "Cannot update pipeline while it is RUNNING") -> None:
        super().__init__(message)


class InvalidSchedule(DomainError):
    """A schedule that is not a valid cron expression."""

    field = "schedule"


class ReconcileFailed(DomainError):
    """Reconciliation could not run (no key, a failing source query); the message says why."""


class ConnectionNotFound(DomainError):
    def __init__(self) -> None:
        super().__init__("Connection not found")


class ConnectionNameTaken(DomainError):
    field = "name"

    def __init__(self) -> None:
        super().__init__("Connection with this name already exists")


class InvalidConnection(DomainError):
    """Connection settings that are well-typed but unusable (a bad URL, a host and a URL at once);
    the raise site names the field when there is one (field="host")."""


class ConnectionInUse(DomainError):
    def __init__(self, pipeline_names: list[str]) -> None:
        self.pipeline_names = pipeline_names
        super().__init__(f"Connection is used by pipelines: {', '.join(pipeline_names)}")


class UnknownSourceConnection(DomainError):
    """A pipeline names a source connection that does not exist."""

    field = "source_connection"


class SourceUnreachable(DomainError):
    """The pipeline's source connection cannot be reached (or logged into) right now."""

    field = "source_connection"


class ServiceBusy(DomainError):
    """Too much of one kind of work is in flight in this process; the client should retry shortly."""

    retry_after_s = 5


class UnknownUpstream(DomainError):
    """An upstream list names a pipeline that does not exist."""

    field = "upstreams"


class DependencyCycle(DomainError):
    """Saving these upstreams would make pipelines wait for each other forever; names the cycle."""

    field = "upstreams"

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(f"upstreams would form a cycle: {' → '.join(names)}")


class AlertChannelNotFound(DomainError):
    def __init__(self) -> None:
        super().__init__("Alert channel not found")


class InvalidAlertChannel(DomainError):
    """Alert channel settings that are well-typed but unusable (name taken, email without SMTP); the
    raise site names the field when there is one (field="name")."""
