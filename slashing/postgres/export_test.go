package postgres

// Exported for the external tests.
const (
	LockNamespaceBlock = lockNamespaceBlock
	LockNamespaceAtt   = lockNamespaceAtt
)
