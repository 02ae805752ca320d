package e2e_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// cachePipeline caches a directory keyed by an input, builds it slowly on a miss, and
// stores it as an artifact; the build also plants a link to / in it, which both
// archives refuse.
const cachePipeline = `{
  "inputs": {"lock": {"default": "a"}},
  "steps": [
    {"name": "Deps cache", "type": "cache-files", "key": "deps-{{ context.inputs.lock }}", "restoreKeys": ["deps-"], "fileNames": ["deps"], "expiry": "7d"},
    {"name": "Install", "run": "if [ -f deps/blob ]; then echo cached; else sleep 3; mkdir -p deps; head -c 3000000 /dev/urandom > deps/blob; echo installed; fi; sha256sum deps/blob; ln -sfn / deps/root"},
    {"name": "Store", "type": "store-files", "key": "report", "fileNames": ["deps/**"], "expiry": "1h"}
  ]}`

// TestDevCachesAndArtifacts drives cache-files and store-files through simpleci dev: run
// 1 misses and saves, run 2 hits and its dependent step is faster, a changed key
// restores through the prefix; the artifact downloads with the bytes the step wrote; a
// link to / is refused and logged; the caches API lists and deletes entries.
func TestDevCachesAndArtifacts(t *testing.T) { cachesFlow(t, startDev(t)) }

// TestDevCachesAndArtifactsS3 is the same with the log service keeping the files in a
// real S3-compatible server (deploy/local/s3.sh, gofakes3), in a bucket of its own.
func TestDevCachesAndArtifactsS3(t *testing.T) {
	raw := os.Getenv("SIMPLECI_TEST_S3_URL")
	if raw == "" {
		t.Skip("SIMPLECI_TEST_S3_URL is not set (deploy/local/s3.sh start; deploy/local/s3.sh url)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = fmt.Sprintf("/e2e%d", time.Now().UnixNano())
	a, _ := startDevWith(t, nil, t.TempDir(), []string{"SIMPLECI_FILES_STORE=" + u.String()}, "--tier", "standard:timeout="+tierTimeout.String())
	cachesFlow(t, a)
}

func cachesFlow(t *testing.T, a *api) {
	// The feature branch (a fork's pull request) has its own key and poisons what it
	// caches.
	prPipeline := strings.Replace(strings.Replace(cachePipeline, `"default": "a"`, `"default": "pr"`, 1),
		`ln -sfn / deps/root`, `echo poison > deps/blob`, 1)
	repo, shas := gitRepo(t, map[string]string{"main2": cachePipeline, "feature": prPipeline})
	var p project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "caches", "provider": "local", "repository": repo, "events": []string{"push", "pull_request"}}, http.StatusOK, &p)

	type timedStep struct {
		Name     string `json:"name"`
		Started  string `json:"startedAt"`
		Finished string `json:"finishedAt"`
	}
	trigger := func(lock string) (string, map[int]string, time.Duration) {
		t.Helper()
		var r run
		a.json("POST", "/api/v1/projects/caches/runs", map[string]any{"ref": "main2", "inputs": map[string]string{"lock": lock}}, http.StatusOK, &r)
		r = a.waitRun(r.ID, 90*time.Second)
		if r.Status != "succeeded" {
			t.Fatalf("run %s: %s (%s) %+v", r.ID, r.Status, r.Reason, r.Steps)
		}
		logs := map[int]string{}
		for _, c := range a.waitLogs(r.ID) {
			logs[c.Step] += c.Text
		}
		var steps struct {
			Steps []timedStep `json:"steps"`
		}
		a.json("GET", "/api/v1/runs/"+r.ID, nil, http.StatusOK, &steps)
		s := steps.Steps[1]
		start, err1 := time.Parse(time.RFC3339Nano, s.Started)
		end, err2 := time.Parse(time.RFC3339Nano, s.Finished)
		if err1 != nil || err2 != nil {
			t.Fatalf("install step times %q %q", s.Started, s.Finished)
		}
		return r.ID, logs, end.Sub(start)
	}
	expect := func(what, text string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s lacks %q:\n%s", what, w, text)
			}
		}
	}

	id1, logs1, slow := trigger("a")
	expect("run 1, cache step", logs1[0], `cache miss: deps-a (no entry for the key or the restore keys "deps-")`)
	expect("run 1, install step", logs1[1], "installed")
	expect("run 1, store step", logs1[2], "refused: deps/root is a symbolic link out of the workspace (-> /)", "stored artifact report: 1 files, 3.0 MB, 1 refused")
	expect("run 1, end", logs1[-1], `step "Deps cache": refused: deps/root is a symbolic link out of the workspace (-> /)`,
		`step "Deps cache": cache saved: deps-a (1 files, 3.0 MB, 1 refused)`)
	blobSum := regexp.MustCompile(`([0-9a-f]{64})  deps/blob`).FindStringSubmatch(logs1[1])
	if blobSum == nil {
		t.Fatalf("no checksum in the install step's log:\n%s", logs1[1])
	}

	_, logs2, fast := trigger("a")
	expect("run 2, cache step", logs2[0], "cache hit: deps-a (1 files, 3.0 MB) in ")
	expect("run 2, install step", logs2[1], "cached", blobSum[1])
	if strings.Contains(logs2[-1], "cache saved") {
		t.Errorf("run 2 saved a key that was stored:\n%s", logs2[-1])
	}
	if fast >= slow {
		t.Errorf("the install step took %s with the cache, %s without", fast, slow)
	}
	t.Logf("install step: %s on a miss, %s on a hit", slow, fast)

	_, logs3, _ := trigger("b")
	expect("run 3, cache step", logs3[0], `cache restored from prefix "deps-": deps-a (1 files, 3.0 MB) in `)
	expect("run 3, install step", logs3[1], "cached", blobSum[1])
	expect("run 3, end", logs3[-1], `step "Deps cache": cache saved: deps-b (1 files, 3.0 MB, 1 refused)`)

	t.Run("the artifact downloads with the bytes stored", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		var list struct {
			Artifacts []struct {
				Name      string `json:"name"`
				Size      string `json:"size"`
				Sha256    string `json:"sha256"`
				ExpiresAt string `json:"expiresAt"`
			} `json:"artifacts"`
		}
		a.json("GET", "/api/v1/runs/"+id1+"/artifacts", nil, http.StatusOK, &list)
		if len(list.Artifacts) != 1 || list.Artifacts[0].Name != "report" || list.Artifacts[0].ExpiresAt == "" {
			t.Fatalf("artifacts %+v", list)
		}
		art := list.Artifacts[0]
		if exp, err := time.Parse(time.RFC3339Nano, art.ExpiresAt); err != nil || time.Until(exp) > time.Hour || time.Until(exp) < 50*time.Minute {
			t.Errorf("expiresAt %s: want about an hour from now", art.ExpiresAt)
		}
		code, body := a.do("GET", "/api/v1/runs/"+id1+"/artifacts/report", nil, nil)
		if code != http.StatusOK {
			t.Fatalf("download: %d %s", code, body)
		}
		sum := sha256.Sum256(body)
		if hex.EncodeToString(sum[:]) != art.Sha256 || fmt.Sprint(len(body)) != art.Size {
			t.Fatalf("downloaded %d bytes with sha256 %x; listed %s bytes, %s", len(body), sum, art.Size, art.Sha256)
		}
		files := untar(t, body)
		blob := sha256.Sum256(files["deps/blob"])
		if hex.EncodeToString(blob[:]) != blobSum[1] {
			t.Errorf("deps/blob in the artifact has sha256 %x, the step wrote %s", blob, blobSum[1])
		}
		if _, ok := files["deps/root"]; ok {
			t.Error("the link to / was stored")
		}
		if code, _ := a.do("GET", "/api/v1/runs/"+id1+"/artifacts/nope", nil, nil); code != http.StatusNotFound {
			t.Errorf("a missing artifact: %d", code)
		}
		if code, _ := a.do("GET", "/api/v1/runs/01aaaaaaaaaaaaaaaaaaaaaaaa/artifacts/report", nil, nil); code != http.StatusNotFound {
			t.Errorf("an unknown run's artifact: %d", code)
		}
	})

	t.Run("the command-line client", func(t *testing.T) {
		cli := func(args ...string) string {
			cmd := exec.Command(bin, append(args, "--server", a.base, "--token", a.token)...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("simpleci %v: %v\n%s", args, err, out)
			}
			return string(out)
		}
		if out := cli("artifacts", "list", id1); !strings.Contains(out, "report") || !strings.Contains(out, "3.0 MB") {
			t.Errorf("artifacts list:\n%s", out)
		}
		file := filepath.Join(t.TempDir(), "report.tar.zst")
		cli("artifacts", "download", id1, "report", "-o", file)
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		_, api := a.do("GET", "/api/v1/runs/"+id1+"/artifacts/report", nil, nil)
		if !bytes.Equal(got, api) {
			t.Errorf("the CLI's download (%d bytes) differs from the API's (%d)", len(got), len(api))
		}
		if out := cli("caches", "list", "caches"); !strings.Contains(out, "deps-a") || !strings.Contains(out, "branch:main2") {
			t.Errorf("caches list:\n%s", out)
		}
	})

	t.Run("the caches API lists and deletes entries", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		type entries struct {
			Entries []struct {
				Key   string `json:"key"`
				Scope string `json:"scope"`
				Size  string `json:"size"`
			} `json:"entries"`
		}
		var l entries
		a.json("GET", "/api/v1/projects/caches/caches", nil, http.StatusOK, &l)
		if len(l.Entries) != 2 || l.Entries[0].Key != "deps-b" || l.Entries[1].Key != "deps-a" || l.Entries[0].Scope != "branch:main2" {
			t.Fatalf("caches %+v", l)
		}
		a.json("DELETE", "/api/v1/projects/caches/caches/deps-a", nil, http.StatusOK, nil)
		a.json("GET", "/api/v1/projects/caches/caches", nil, http.StatusOK, &l)
		if len(l.Entries) != 1 || l.Entries[0].Key != "deps-b" {
			t.Fatalf("caches after the delete %+v", l)
		}
		if code, _ := a.do("DELETE", "/api/v1/projects/caches/caches/deps-a", nil, nil); code != http.StatusNotFound {
			t.Errorf("a second delete: %d", code)
		}
		if code, _ := a.do("GET", "/api/v1/projects/nope/caches", nil, nil); code != http.StatusNotFound {
			t.Errorf("an unknown project's caches: %d", code)
		}
	})

	t.Run("a fork's pull request reads the base branch's cache and never writes it", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		delivery := fmt.Sprintf("pr-%d", time.Now().UnixNano())
		body, _ := json.Marshal(map[string]any{"ref": "refs/heads/feature", "after": shas["feature"], "sender": map[string]string{"login": "mallory"},
			"delivery": delivery, "pull_request": map[string]any{
				"head": map[string]any{"repo": map[string]string{"full_name": "mallory/fork"}},
				"base": map[string]any{"ref": "main2", "repo": map[string]string{"full_name": "owner/caches"}}}})
		code, b := a.do("POST", p.WebhookPath, body, map[string]string{"X-Hub-Signature-256": sign(p.WebhookSecret, body),
			"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": delivery})
		var out struct {
			RunIDs []string `json:"runIds"`
		}
		if code != http.StatusAccepted || json.Unmarshal(b, &out) != nil || len(out.RunIDs) != 1 {
			t.Fatalf("pull request webhook: %d %s", code, b)
		}
		r := a.waitRun(out.RunIDs[0], 90*time.Second)
		if r.Status != "succeeded" {
			t.Fatalf("pull request run: %s (%s)", r.Status, r.Reason)
		}
		logs := map[int]string{}
		for _, c := range a.waitLogs(r.ID) {
			logs[c.Step] += c.Text
		}
		expect("the pull request's cache step", logs[0], `cache restored from prefix "deps-": deps-b`)
		expect("the pull request's end", logs[-1], `step "Deps cache": cache saved: deps-pr`)
		var l struct {
			Entries []struct {
				Key   string `json:"key"`
				Scope string `json:"scope"`
			} `json:"entries"`
		}
		a.json("GET", "/api/v1/projects/caches/caches", nil, http.StatusOK, &l)
		if len(l.Entries) != 2 || l.Entries[0].Key != "deps-pr" || l.Entries[0].Scope != "pr:feature" {
			t.Fatalf("caches after the pull request %+v: want deps-pr in scope pr:feature", l)
		}
		// The base branch asks for the same key: a miss in its own scope, so it restores
		// its own entry, not the poisoned one.
		_, logs2, _ := trigger("pr")
		expect("main2's cache step", logs2[0], `cache restored from prefix "deps-": deps-b`)
		expect("main2's install step", logs2[1], "cached", blobSum[1])
		if strings.Contains(logs2[1], "poison") {
			t.Errorf("main2 restored the pull request's files:\n%s", logs2[1])
		}
	})
}

// untar reads a tar+zstd archive into memory (the test's artifact is small).
func untar(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = b
	}
}
