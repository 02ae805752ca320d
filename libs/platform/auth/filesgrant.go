package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"time"

	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
)

// A FilesGrant (runnerv1.FilesGrant) is the capability a runner presents to restore and
// save a run's caches and store its artifacts (RunnerFilesService, served by the log
// service): issued by the scheduler with a claimed job, in the scopes of the run's
// branch, verified without asking the scheduler. Its key is derived from the deployment
// secret apart from the log grants' (docs/adr/0031-caches-and-artifacts.md).

func filesGrantMAC(secret string, g *runnerv1.FilesGrant) []byte {
	k := hmac.New(sha256.New, []byte(secret))
	k.Write([]byte("simpleci files grant key v1"))
	// The read scopes are counted first, so no two grants share an encoding.
	strs := append([]string{g.GetRunId(), g.GetRunner(), g.GetOrgId(), g.GetProjectId(), g.GetWriteScope(),
		strconv.Itoa(len(g.GetReadScopes()))}, g.GetReadScopes()...)
	return grantMAC(k.Sum(nil), strs, g.GetAttempt(), g.GetMaxEntryBytes(), g.GetExpiresAt().AsTime())
}

// SignFilesGrant sets g's MAC under the deployment secret.
func SignFilesGrant(secret string, g *runnerv1.FilesGrant) error {
	switch {
	case secret == "":
		return errors.New("files grant: this process holds no deployment secret (--internal-token / SIMPLECI_INTERNAL_TOKEN)")
	case g.GetRunId() == "" || g.GetRunner() == "" || g.GetProjectId() == "" || g.GetWriteScope() == "" || g.GetAttempt() < 1 || g.GetExpiresAt() == nil:
		return fmt.Errorf("files grant: run id, runner, project, write scope, attempt and expiry are required (run %q)", g.GetRunId())
	}
	g.Mac = filesGrantMAC(secret, g)
	return nil
}

// VerifyFilesGrant checks that g was signed under the deployment secret, names runner
// (the caller's runner name, from its token) and has not expired at now. Its errors name
// the run and the runner, never the MAC.
func VerifyFilesGrant(secret string, g *runnerv1.FilesGrant, runner string, now time.Time) error {
	switch {
	case secret == "":
		return errors.New("files grant: this process holds no deployment secret")
	case g == nil || len(g.GetMac()) == 0:
		return errors.New("no files grant: a runner reaches caches and artifacts of a job it claimed, under the job's files_grant")
	}
	return checkGrant("files", hmac.Equal(g.GetMac(), filesGrantMAC(secret, g)), g.GetRunId(), g.GetAttempt(), g.GetRunner(), runner, g.GetExpiresAt().AsTime(), now)
}
