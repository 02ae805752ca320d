// Package platform holds what every SimpleCI service shares: the service lifecycle, the
// gRPC and HTTP servers with health, readiness and metrics, authentication of callers,
// logging and the SQL database handle used by both the embedded and the production stores.
package platform
