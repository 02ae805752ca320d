package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"

	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
)

// The service identities: each peer service calls the others as itself, and the ACL
// (acl.go) says which methods each may call.
const (
	Gateway   = "gateway"
	Auth      = "auth"
	Project   = "project"
	Scheduler = "scheduler"
	Log       = "log"
)

// ServiceIdentities lists the service identities (the runner is not one: each runner
// has an identity of its own, see RunnerIdentity).
var ServiceIdentities = []string{Gateway, Auth, Project, Scheduler, Log}

// identityPrefix starts every service identity token.
const identityPrefix = "sid_"

// runnerIdentity prefixes the identity of a runner that runs in a process holding the
// deployment secret (`simpleci dev`): "runner/NAME".
const runnerIdentity = "runner/"

// RunnerIdentity is the identity of the runner named name, for a process that mints it
// from the deployment secret (IdentityToken).
func RunnerIdentity(name string) string { return runnerIdentity + name }

var runnerName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidRunnerName checks a runner's name: 1 to 63 characters of a-z, 0-9 and '-',
// starting with a letter or a digit.
func ValidRunnerName(name string) error {
	if !runnerName.MatchString(name) {
		return fmt.Errorf("runner name %q: 1 to 63 characters of a-z, 0-9 and '-', starting with a letter or digit", name)
	}
	return nil
}

// IdentityToken returns the token that identity presents in a deployment whose secret
// (SIMPLECI_INTERNAL_TOKEN) is secret: "sid_IDENTITY.MAC", MAC an HMAC-SHA256 of the
// identity under the secret. The secret itself never travels; every process holding it
// verifies identity tokens without asking anyone (docs/adr/0014-service-identities.md).
func IdentityToken(secret, identity string) (string, error) {
	if secret == "" {
		return "", fmt.Errorf("identity %s: this process holds no deployment secret (--internal-token / SIMPLECI_INTERNAL_TOKEN)", identity)
	}
	if _, err := identityPrincipal(identity); err != nil {
		return "", err
	}
	return identityPrefix + identity + "." + identityMAC(secret, identity), nil
}

func identityMAC(secret, identity string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("simpleci service identity v1\x00" + identity))
	return hex.EncodeToString(m.Sum(nil))
}

// identityPrincipal is the principal of a known identity.
func identityPrincipal(identity string) (*authv1.Principal, error) {
	if name, ok := strings.CutPrefix(identity, runnerIdentity); ok {
		if err := ValidRunnerName(name); err != nil {
			return nil, err
		}
		return &authv1.Principal{Login: "runner:" + name, Runner: name}, nil
	}
	if !slices.Contains(ServiceIdentities, identity) {
		return nil, fmt.Errorf("unknown identity %q (known: %s, runner/NAME)", identity, strings.Join(ServiceIdentities, ", "))
	}
	return &authv1.Principal{Login: "service:" + identity, Service: identity}, nil
}

// verifyIdentity resolves an identity token under secret; false for anything else.
func verifyIdentity(secret, token string) (*authv1.Principal, bool) {
	rest, ok := strings.CutPrefix(token, identityPrefix)
	if !ok || secret == "" {
		return nil, false
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return nil, false
	}
	identity, mac := rest[:i], rest[i+1:]
	if subtle.ConstantTimeCompare([]byte(mac), []byte(identityMAC(secret, identity))) != 1 {
		return nil, false
	}
	p, err := identityPrincipal(identity)
	return p, err == nil
}

// RunnerTokenPrefix starts every runner token: "scr_NAME_SECRET" (issued by the auth
// service, `simpleci runners register NAME`). The name is not secret; it lets a runner
// know its own name from its token.
const RunnerTokenPrefix = "scr_"

// RunnerTokenName returns the runner name a runner token carries.
func RunnerTokenName(token string) (string, error) {
	rest, ok := strings.CutPrefix(token, RunnerTokenPrefix)
	name, secret, ok2 := strings.Cut(rest, "_")
	if !ok || !ok2 || len(secret) < 32 || ValidRunnerName(name) != nil {
		return "", fmt.Errorf("not a runner token (want %sNAME_SECRET, from `simpleci runners register NAME`)", RunnerTokenPrefix)
	}
	return name, nil
}
