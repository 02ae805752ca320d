package e2e_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/eventstore/pgtest"
)

// TestServices runs the six services as separate processes over the real Kafka broker
// and PostgreSQL (SIMPLECI_TEST_KAFKA_BROKERS, SIMPLECI_TEST_POSTGRES_URL; make test
// starts both) and drives them through the gateway.
func TestServices(t *testing.T) {
	scenarios(t, startServices(t))
}

// startServices starts the six services as separate `simpleci serve` processes and
// returns a client of the gateway with the admin token.
func startServices(t testing.TB) *api {
	brokers := os.Getenv("SIMPLECI_TEST_KAFKA_BROKERS")
	if brokers == "" {
		t.Skip("SIMPLECI_TEST_KAFKA_BROKERS not set: run via make test, or start deploy/local/kafka.sh")
	}
	dbURL := pgtest.NewDatabase(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin-token")
	grpc := map[string]string{}
	for _, s := range []string{"gateway", "auth", "project", "scheduler", "runner", "log"} {
		grpc[s] = freeAddr(t)
	}
	gatewayHTTP := freeAddr(t)
	common := []string{
		"SIMPLECI_DATABASE_URL=" + dbURL,
		"SIMPLECI_KAFKA_BROKERS=" + brokers,
		"SIMPLECI_INTERNAL_TOKEN=int-" + filepath.Base(dir),
		"SIMPLECI_AUTH_ADDR=" + grpc["auth"],
		"SIMPLECI_PROJECT_ADDR=" + grpc["project"],
		"SIMPLECI_SCHEDULER_ADDR=" + grpc["scheduler"],
		"SIMPLECI_LOG_ADDR=" + grpc["log"],
	}
	extra := map[string][]string{
		"auth":      {"--admin-token-file", tokenFile},
		"scheduler": {"--tier", "standard:timeout=" + tierTimeout.String(), "--lease", "10s"},
		"runner":    {"--data", filepath.Join(dir, "runner")},
	}
	for _, s := range []string{"auth", "project", "log", "scheduler", "runner", "gateway"} {
		httpAddr := freeAddr(t)
		if s == "gateway" {
			httpAddr = gatewayHTTP
		}
		args := append([]string{"serve", "--service", s, "--grpc", grpc[s], "--http", httpAddr}, extra[s]...)
		start(t, s, common, args...)
	}
	var token string
	eventually(t, 60*time.Second, "the auth service to write the admin token", func() bool {
		b, err := os.ReadFile(tokenFile)
		token = strings.TrimSpace(string(b))
		return err == nil && token != ""
	})
	a := &api{t: t, base: "http://" + gatewayHTTP, token: token}
	eventually(t, 60*time.Second, "the gateway to answer", func() bool { return a.up("/api/v1/projects") })
	return a
}
