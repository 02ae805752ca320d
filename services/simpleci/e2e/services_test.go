package e2e_test

import "testing"

// TestServices runs the six services as separate processes over the real Kafka broker
// and PostgreSQL (SIMPLECI_TEST_KAFKA_BROKERS, SIMPLECI_TEST_POSTGRES_URL; make test
// starts both) and drives them through the gateway.
func TestServices(t *testing.T) {
	scenarios(t, startServices(t))
}

// startServices starts the six services as separate `simpleci serve` processes (one
// runner) and returns a client of the gateway with the admin token.
func startServices(t testing.TB) *api {
	return startClusterWith(t, 1, "--tier", "standard:timeout="+tierTimeout.String(), "--lease", "10s").api
}
