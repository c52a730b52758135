"""The AutotuA master: a Django project that validates jobs against the jobtage tree, queues them,
hands them to slaves over the protocol of docs/protocol.md, and tracks every result."""
