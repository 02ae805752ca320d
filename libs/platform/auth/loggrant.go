package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
)

// A LogGrant (runnerv1.LogGrant) is the capability a runner presents to append a run's
// log: issued by the scheduler with a claimed job, verified by the log service on every
// batch without asking the scheduler. Both derive its key from the deployment secret,
// which runner processes never hold (docs/adr/0014-service-identities.md).

// logGrantKey is the key of log grants in a deployment whose secret is secret: derived,
// so that a grant's MAC says nothing about identity tokens and the reverse.
func logGrantKey(secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("simpleci log grant key v1"))
	return m.Sum(nil)
}

// logGrantMAC is the MAC of every field of g but its mac, each length-prefixed so that
// no two grants share an encoding.
func logGrantMAC(secret string, g *runnerv1.LogGrant) []byte {
	return grantMAC(logGrantKey(secret), []string{g.GetRunId(), g.GetRunner(), g.GetOrgId(), g.GetProjectId()}, g.GetAttempt(),
		g.GetRunLogBytes(), g.GetExpiresAt().AsTime())
}

// grantMAC is the HMAC-SHA256 under key of a grant's strings (each length-prefixed),
// attempt, limit and expiry.
func grantMAC(key []byte, strs []string, attempt int32, limit int64, expires time.Time) []byte {
	m := hmac.New(sha256.New, key)
	var buf []byte
	for _, s := range strs {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
		buf = append(buf, s...)
	}
	buf = binary.BigEndian.AppendUint32(buf, uint32(attempt))
	buf = binary.BigEndian.AppendUint64(buf, uint64(limit))
	buf = binary.BigEndian.AppendUint64(buf, uint64(expires.UnixNano()))
	m.Write(buf)
	return m.Sum(nil)
}

// SignLogGrant sets g's MAC under the deployment secret.
func SignLogGrant(secret string, g *runnerv1.LogGrant) error {
	switch {
	case secret == "":
		return errors.New("log grant: this process holds no deployment secret (--internal-token / SIMPLECI_INTERNAL_TOKEN)")
	case g.GetRunId() == "" || g.GetRunner() == "" || g.GetAttempt() < 1 || g.GetExpiresAt() == nil:
		return fmt.Errorf("log grant: run id, runner, attempt and expiry are required (run %q, runner %q, attempt %d)", g.GetRunId(), g.GetRunner(), g.GetAttempt())
	}
	g.Mac = logGrantMAC(secret, g)
	return nil
}

// VerifyLogGrant checks that g was signed under the deployment secret, names runner
// (the caller's runner name, from its token) and has not expired at now. Its errors
// name the run and the runner, never the MAC.
func VerifyLogGrant(secret string, g *runnerv1.LogGrant, runner string, now time.Time) error {
	switch {
	case secret == "":
		return errors.New("log grant: this process holds no deployment secret")
	case g == nil || len(g.GetMac()) == 0:
		return errors.New("no log grant: a runner appends the log of a job it claimed, under the job's log_grant")
	}
	return checkGrant("log", hmac.Equal(g.GetMac(), logGrantMAC(secret, g)), g.GetRunId(), g.GetAttempt(), g.GetRunner(), runner, g.GetExpiresAt().AsTime(), now)
}

// checkGrant is the part of verifying a grant (log, files) that all kinds share: its MAC,
// its holder and its expiry. Its errors name the run and the runner, never the MAC.
func checkGrant(kind string, macOK bool, run string, attempt int32, holder, runner string, expires, now time.Time) error {
	switch {
	case !macOK:
		return fmt.Errorf("the %s grant for run %s is not the scheduler's (forged or altered)", kind, run)
	case holder != runner:
		return fmt.Errorf("the %s grant for run %s was issued to runner %s, not %s", kind, run, holder, runner)
	case !now.Before(expires):
		return fmt.Errorf("the %s grant for run %s (attempt %d) expired at %s", kind, run, attempt, expires.UTC().Format(time.RFC3339))
	}
	return nil
}
