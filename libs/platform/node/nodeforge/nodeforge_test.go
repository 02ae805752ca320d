package nodeforge_test

import (
	"slices"
	"testing"

	"github.com/simpleci/simpleci/libs/platform/node/nodeforge"
)

// git sees the operator's credential channels and nothing else of the process's
// environment: no tokens of the services, no proxies.
func TestGitEnv(t *testing.T) {
	got := nodeforge.GitEnv([]string{"SSH_AUTH_SOCK=/run/agent", "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader",
		"GIT_CONFIG_VALUE_0=Authorization: Bearer x", "SSL_CERT_FILE=/etc/ca.pem", "SIMPLECI_INTERNAL_TOKEN=secret",
		"HTTPS_PROXY=http://proxy:3128", "HOME=/root", "GIT_SSH_COMMAND=ssh -o ProxyCommand=x"})
	want := []string{"SSH_AUTH_SOCK=/run/agent", "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader",
		"GIT_CONFIG_VALUE_0=Authorization: Bearer x", "SSL_CERT_FILE=/etc/ca.pem"}
	if !slices.Equal(got, want) {
		t.Fatalf("GitEnv = %q, want %q", got, want)
	}
}
