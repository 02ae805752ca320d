package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDevLogLimits checks the bounds on logs end to end in `simpleci dev`: the output
// caps of a tier (a step past its cap keeps running, its log says where it was cut, the
// run's log stops at the run's cap), a log larger than a gRPC message read back whole
// through the REST pages and the CLI, and the cap on live streams per token.
func TestDevLogLimits(t *testing.T) {
	const streams = 3
	data := t.TempDir()
	a, _ := startDevWith(t, nil, data, nil, "--tier", "standard:timeout=60s,log-step=5MiB,log-run=7MiB",
		"--log-streams-per-token", fmt.Sprint(streams))
	repo, shas := gitRepo(t, map[string]string{
		"flood": `{"steps": [
			{"name": "flood", "run": "head -c 6291456 /dev/zero | tr '\\0' a; echo the step went on > went-on"},
			{"name": "more", "run": "test -f went-on && head -c 3145728 /dev/zero | tr '\\0' b"},
			{"name": "last", "run": "echo x"}]}`,
		"big":   `{"steps": [{"name": "count", "run": "seq 1 700000"}]}`,
		"sleep": `{"steps": [{"name": "wait", "run": "sleep 50"}]}`,
	})
	var tiers struct {
		Tiers []struct {
			Name         string `json:"name"`
			StepLogBytes string `json:"stepLogBytes"`
			RunLogBytes  string `json:"runLogBytes"`
		} `json:"tiers"`
	}
	a.json("GET", "/api/v1/tiers", nil, http.StatusOK, &tiers)
	caps := map[string]string{}
	for _, tr := range tiers.Tiers {
		caps[tr.Name] = tr.StepLogBytes + "/" + tr.RunLogBytes
	}
	if caps["standard"] != "5242880/7340032" || caps["medium"] != "33554432/134217728" {
		t.Errorf("GET /api/v1/tiers: caps %v, want standard at the --tier values (5 MiB/7 MiB), medium at its defaults", caps)
	}
	var p project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "logs", "provider": "local", "repository": repo, "events": []string{"push"}}, http.StatusOK, &p)

	t.Run("a step past its cap keeps running and the run's log stops at the run's cap", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		r := a.waitRun(a.push(p, "flood", shas["flood"]), 90*time.Second)
		if r.Status != "succeeded" {
			t.Fatalf("run %s (%s) %+v: want succeeded, output past a cap does not fail a step", r.Status, r.Reason, r.Steps)
		}
		kept := 0
		system := map[int]string{}
		out := map[int]int{}
		for _, c := range a.waitLogs(r.ID) {
			if c.Stream == "system" && c.Step >= 0 {
				system[c.Step] += c.Text
				continue
			}
			kept += len(c.Text) // the isolation line counts against the run's cap
			out[c.Step] += len(c.Text)
		}
		if kept != 7<<20 {
			t.Errorf("the run kept %d bytes of output, want exactly its cap, 7 MiB", kept)
		}
		if out[0] != 5<<20 {
			t.Errorf("step 0 kept %d bytes, want exactly the step cap, 5 MiB", out[0])
		}
		for step, want := range map[int][]string{
			0: {"[simpleci] output truncated: step log limit (5 MiB) reached", "1048576 bytes of this step's output dropped"},
			1: {"[simpleci] output truncated: run log limit (7 MiB) reached", "of this step's output dropped"},
			2: {"output truncated: 2 bytes of this step's output dropped"},
		} {
			for _, w := range want {
				if !strings.Contains(system[step], w) {
					t.Errorf("step %d's system lines %q lack %q", step, system[step], w)
				}
			}
		}
	})

	t.Run("a log larger than a gRPC message reads back whole through REST pages and the CLI", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		r := a.waitRun(a.push(p, "big", shas["big"]), 90*time.Second)
		if r.Status != "succeeded" {
			t.Fatalf("run %s (%s)", r.Status, r.Reason)
		}
		var want bytes.Buffer
		for i := 1; i <= 700000; i++ {
			fmt.Fprintf(&want, "%d\n", i)
		}
		var rest, stdout bytes.Buffer
		pages := 0
		for _, c := range a.waitLogs(r.ID) {
			rest.WriteString(c.Text)
			if c.Stream == "stdout" {
				stdout.WriteString(c.Text)
			}
		}
		after := "0"
		for ; after != ""; pages++ {
			var page struct {
				NextAfter string `json:"nextAfter"`
			}
			a.json("GET", "/api/v1/runs/"+r.ID+"/logs?after="+after, nil, http.StatusOK, &page)
			after = page.NextAfter
		}
		if want.Len() <= 4<<20 || !bytes.Equal(stdout.Bytes(), want.Bytes()) {
			t.Fatalf("REST pages gave %d bytes of stdout, want the %d bytes `seq 1 700000` printed, byte for byte", stdout.Len(), want.Len())
		}
		if pages < 5 {
			t.Errorf("%d pages for %d bytes: want pages of at most about 1 MiB", pages, rest.Len())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "runs", "logs", r.ID)
		cmd.Env = append(os.Environ(), "SIMPLECI_SERVER="+a.base, "SIMPLECI_TOKEN="+a.token)
		var cliOut, cliErr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &cliOut, &cliErr
		if err := cmd.Run(); err != nil {
			t.Fatalf("simpleci runs logs: %v\n%s", err, cliErr.Bytes())
		}
		if !bytes.Equal(cliOut.Bytes(), rest.Bytes()) {
			t.Fatalf("simpleci runs logs printed %d bytes, want the %d bytes of the REST pages, byte for byte", cliOut.Len(), rest.Len())
		}
	})

	t.Run("a token holds a bounded number of live streams", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		id := a.push(p, "sleep", shas["sleep"])
		eventually(t, 30*time.Second, "the sleeping run to start", func() bool {
			code, b := a.do("GET", "/api/v1/runs/"+id, nil, nil)
			var r run
			return code == http.StatusOK && json.Unmarshal(b, &r) == nil && r.Status == "running"
		})
		open := func() (*http.Response, context.CancelFunc) {
			t.Helper()
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/api/v1/runs/"+id+"/logs:stream", nil)
			req.Header.Set("Authorization", "Bearer "+a.token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("open a stream: %v", err)
			}
			t.Cleanup(func() { resp.Body.Close() })
			return resp, cancel
		}
		var first context.CancelFunc
		for i := range streams {
			resp, cancel := open()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("stream %d: status %d, want 200", i+1, resp.StatusCode)
			}
			if i == 0 {
				first = cancel
			}
		}
		resp, _ := open()
		var e struct {
			Message string `json:"message"`
		}
		if resp.StatusCode != http.StatusTooManyRequests || json.NewDecoder(resp.Body).Decode(&e) != nil ||
			!strings.Contains(e.Message, fmt.Sprintf("too many log streams: this token already has %d open", streams)) {
			t.Fatalf("stream %d: status %d, message %q; want 429 saying why", streams+1, resp.StatusCode, e.Message)
		}
		first()
		eventually(t, 10*time.Second, "the slot of a closed stream to be given back", func() bool {
			resp, cancel := open()
			defer cancel()
			return resp.StatusCode == http.StatusOK
		})
		a.json("POST", "/api/v1/runs/"+id+":cancel", map[string]any{}, http.StatusOK, nil)
	})
}
