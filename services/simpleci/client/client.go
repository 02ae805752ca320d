// Package client is the API client half of the simpleci command: runs, trigger,
// projects, tokens, runners, members, orgs and teams, talking to a SimpleCI server's REST API (--server, --token or
// SIMPLECI_SERVER, SIMPLECI_TOKEN).
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Commands lists the top-level commands this package handles.
var Commands = []string{"runs", "trigger", "projects", "tokens", "runners", "members", "orgs", "teams"}

// IO is where a command reads and writes.
type IO struct {
	Out, Err io.Writer
	Env      func(string) string
}

// Std is the process's standard IO and environment.
func Std() IO { return IO{Out: os.Stdout, Err: os.Stderr, Env: os.Getenv} }

type api struct {
	server, token string
	http          *http.Client
	io            IO
}

// Main runs one client command (args[0] is the command) and returns the exit code:
// 0 success, 1 a failed request or a failed run (runs wait), 2 usage.
func Main(ctx context.Context, args []string, io IO) int {
	fs := flag.NewFlagSet("simpleci "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Err)
	server := fs.String("server", def(io.Env("SIMPLECI_SERVER"), "http://localhost:8080"), "server URL (SIMPLECI_SERVER)")
	token := fs.String("token", io.Env("SIMPLECI_TOKEN"), "API token (SIMPLECI_TOKEN)")
	follow := fs.Bool("f", false, "logs: follow the live log until the run ends")
	ref := fs.String("ref", "", "trigger, projects schedule add: branch, tag or commit (default: the repository's HEAD)")
	event := fs.String("event", "manual", "trigger: the event name")
	status := fs.String("status", "", "runs list: only runs with this status")
	branch := fs.String("branch", "", "runs list: only runs of this branch")
	trigger := fs.String("trigger", "", "runs list: only runs started by push, pull_request, tag, manual, schedule or rerun")
	expires := fs.String("expires", "", "tokens create: lifetime such as 720h (default 2160h = 90 days, at most 8760h)")
	role := fs.String("role", "", "members add|set, teams create|set: viewer, developer, maintainer or owner")
	org := fs.String("org", "", "tokens create: the organisation the token acts in (default: your own)")
	events := fs.String("events", "", "projects update: the events, comma-separated (push,pull_request,tag,manual,schedule)")
	tier := fs.String("tier", "", "projects update: the runner tier")
	network := fs.String("network", "", "projects update: default, on or off")
	var sched scheduleArgs
	fs.StringVar(&sched.cron, "cron", "", "projects schedule add: 5 cron fields, such as '0 3 * * 1-5'")
	fs.StringVar(&sched.timezone, "timezone", "", "projects schedule add: an IANA time zone such as Europe/Berlin (default UTC)")
	inputs := inputFlag{}
	fs.Var(inputs, "input", "trigger: a pipeline input as name=value (repeatable)")
	fromFailed := fs.Bool("from-failed", false, "runs rerun: run again from the first failed step (default: the whole run)")
	output := fs.String("o", "", "artifacts download: the file to write (default NAME.tar.zst; - for stdout)")
	scope := fs.String("scope", "", "caches delete: only the entry of this scope (branch:NAME, pr:N)")
	if err := fs.Parse(reorder(args[1:])); err != nil {
		return 2
	}
	a := &api{server: strings.TrimRight(*server, "/"), token: *token, http: &http.Client{}, io: io}
	if a.token == "" {
		fmt.Fprintln(io.Err, "simpleci: no API token: pass --token or set SIMPLECI_TOKEN (simpleci dev writes one to .simpleci-data/admin-token)")
		return 2
	}
	rest := fs.Args()
	usage := func() int {
		fmt.Fprint(io.Err, `usage:
  simpleci runs list PROJECT [--status S] [--branch B] [--trigger push|pull_request|tag|manual|schedule|rerun]
  simpleci runs show RUN
  simpleci runs logs RUN [-f]
  simpleci runs events RUN
  simpleci runs cancel RUN
  simpleci runs rerun RUN [--from-failed]   (a new run: same commit and pipeline; default the whole run)
  simpleci trigger PROJECT [--ref REF] [--event E] [--input NAME=VALUE ...]
  simpleci projects list
  simpleci projects update PROJECT [--events push,tag] [--tier T] [--network default|on|off]   (maintainers)
  simpleci projects delete PROJECT     (owners: the project and its secrets; its runs stay)
  simpleci projects schedule list PROJECT
  simpleci projects schedule add PROJECT --cron '0 3 * * 1-5' [--timezone Europe/Berlin] [--ref main]   (maintainers)
  simpleci projects schedule remove PROJECT N                                                        (maintainers)
  simpleci members list
  simpleci members add LOGIN --role ROLE   (owners: a new user and its first token, shown once)
  simpleci members set LOGIN --role ROLE   (owners; roles: viewer, developer, maintainer, owner)
  simpleci members remove LOGIN            (owners: its tokens of this organisation are revoked)
  simpleci orgs list                       (your organisations, your role in each; * the token's)
  simpleci orgs create NAME                (you own it: make a token with tokens create --org NAME)
  simpleci teams list | show TEAM
  simpleci teams create TEAM --role ROLE | set TEAM --role ROLE | delete TEAM   (owners)
  simpleci teams add TEAM LOGIN | remove TEAM LOGIN                            (owners)
  simpleci repos list                      (the GitHub repositories you administer; needs sign-in with GitHub)
  simpleci tokens create NAME [--expires 720h] [--org NAME]
  simpleci tokens list
  simpleci tokens revoke ID
  simpleci artifacts list RUN
  simpleci artifacts download RUN NAME [-o FILE]   (default NAME.tar.zst; - for stdout; the sha256 is checked)
  simpleci caches list PROJECT
  simpleci caches delete PROJECT KEY [--scope S]   (maintainers)
  simpleci runners register NAME     (admins: a runner's own token, shown once)
  simpleci runners list
  simpleci runners revoke NAME
`)
		return 2
	}
	var err error
	switch {
	case args[0] == "runs" && len(rest) == 2 && rest[0] == "list":
		q := url.Values{}
		for k, v := range map[string]string{"status": *status, "branch": *branch, "trigger": *trigger} {
			if v != "" {
				q.Set(k, v)
			}
		}
		err = a.listRuns(ctx, rest[1], q)
	case args[0] == "runs" && len(rest) == 2 && rest[0] == "show":
		err = a.showRun(ctx, rest[1])
	case args[0] == "runs" && len(rest) == 2 && rest[0] == "logs":
		err = a.logs(ctx, rest[1], *follow)
	case args[0] == "runs" && len(rest) == 2 && rest[0] == "events":
		err = a.events(ctx, rest[1])
	case args[0] == "runs" && len(rest) == 2 && rest[0] == "cancel":
		var r run
		if err = a.do(ctx, "POST", "/api/v1/runs/"+url.PathEscape(rest[1])+":cancel", map[string]any{}, &r); err == nil {
			fmt.Fprintf(io.Out, "run %s: %s\n", r.ID, r.Status)
		}
	case args[0] == "runs" && len(rest) == 2 && rest[0] == "rerun":
		var r run
		if err = a.do(ctx, "POST", "/api/v1/runs/"+url.PathEscape(rest[1])+":rerun", map[string]any{"fromFailed": *fromFailed}, &r); err == nil {
			fmt.Fprintf(io.Out, "run %s (#%s) %s at %s, re-run of #%s\n", r.ID, r.Number, r.Status, short(r.Sha), r.RerunOfNumber)
		}
	case args[0] == "trigger" && len(rest) == 1:
		var r run
		body := map[string]any{"ref": *ref, "event": *event, "inputs": map[string]string(inputs)}
		if err = a.do(ctx, "POST", "/api/v1/projects/"+url.PathEscape(rest[0])+"/runs", body, &r); err == nil {
			fmt.Fprintf(io.Out, "run %s (#%s) %s at %s\n", r.ID, r.Number, r.Status, short(r.Sha))
		}
	case args[0] == "projects" && len(rest) == 1 && rest[0] == "list":
		err = a.listProjects(ctx)
	case args[0] == "projects" && len(rest) == 2 && rest[0] == "update":
		err = a.updateProject(ctx, rest[1], *events, *tier, *network)
	case args[0] == "projects" && len(rest) >= 1 && rest[0] == "schedule":
		sched.ref = *ref
		err = a.schedules(ctx, rest, sched)
	case args[0] == "projects" && len(rest) == 2 && rest[0] == "delete":
		if err = a.do(ctx, "DELETE", "/api/v1/projects/"+url.PathEscape(rest[1]), nil, &struct{}{}); err == nil {
			fmt.Fprintf(io.Out, "project %s deleted\n", rest[1])
		}
	case args[0] == "members":
		err = a.members(ctx, rest, *role)
	case args[0] == "orgs":
		err = a.orgs(ctx, rest)
	case args[0] == "teams":
		err = a.teams(ctx, rest, *role)
	case args[0] == "repos" && len(rest) == 1 && rest[0] == "list":
		err = a.listRepos(ctx)
	case args[0] == "tokens" && len(rest) == 2 && rest[0] == "create":
		var t apiToken
		if err = a.do(ctx, "POST", "/api/v1/tokens", map[string]string{"name": rest[1], "expiresIn": *expires, "organization": *org}, &t); err == nil {
			fmt.Fprintf(io.Out, "token %s (%s) acts in %s, expires %s; it is shown only now:\n%s\n", t.ID, t.Name, t.Org, t.Expires, t.Token)
		}
	case args[0] == "tokens" && len(rest) == 1 && rest[0] == "list":
		err = a.listTokens(ctx)
	case args[0] == "tokens" && len(rest) == 2 && rest[0] == "revoke":
		if err = a.do(ctx, "DELETE", "/api/v1/tokens/"+url.PathEscape(rest[1]), nil, &struct{}{}); err == nil {
			fmt.Fprintf(io.Out, "token %s revoked\n", rest[1])
		}
	case args[0] == "runners" && len(rest) == 2 && rest[0] == "register":
		var r apiRunner
		if err = a.do(ctx, "POST", "/api/v1/runners", map[string]string{"name": rest[1]}, &r); err == nil {
			fmt.Fprintf(io.Out, "runner %s registered; its token is shown only now (give it to the runner as SIMPLECI_RUNNER_TOKEN or in --runner-token-file):\n%s\n", r.Name, r.Token)
		}
	case args[0] == "artifacts" || args[0] == "caches":
		err = a.files(ctx, args[0], rest, *output, *scope)
	case args[0] == "runners" && len(rest) == 1 && rest[0] == "list":
		err = a.listRunners(ctx)
	case args[0] == "runners" && len(rest) == 2 && rest[0] == "revoke":
		if err = a.do(ctx, "DELETE", "/api/v1/runners/"+url.PathEscape(rest[1]), nil, &struct{}{}); err == nil {
			fmt.Fprintf(io.Out, "runner %s revoked: its token stops working within seconds\n", rest[1])
		}
	default:
		return usage()
	}
	if errors.Is(err, errUsage) {
		return usage()
	}
	if err != nil {
		fmt.Fprintln(io.Err, "simpleci:", err)
		return 1
	}
	return 0
}

// inputFlag collects --input name=value.
type inputFlag map[string]string

func (f inputFlag) String() string { return "" }

func (f inputFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want name=value, not %q", s)
	}
	if _, dup := f[k]; dup {
		return fmt.Errorf("input %q given twice", k)
	}
	f[k] = v
	return nil
}

// boolFlag names the flags that take no value.
var boolFlag = map[string]bool{"f": true, "from-failed": true}

// reorder moves flags after positional arguments to the front, so that both
// `runs logs RUN -f` and `runs logs -f RUN` work.
func reorder(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		if strings.HasPrefix(args[i], "-") {
			flags = append(flags, args[i])
			if !strings.Contains(args[i], "=") && !boolFlag[strings.TrimLeft(args[i], "-")] && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, args[i])
	}
	return append(flags, pos...)
}

func def(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// apiError is the server's error body.
type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (a *api) request(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.server+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, a.server, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e apiError
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e) == nil && e.Message != "" {
			return nil, fmt.Errorf("%s (HTTP %d)", e.Message, resp.StatusCode)
		}
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

func (a *api) do(ctx context.Context, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := a.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

type step struct {
	Index    int    `json:"index"`
	Name     string `json:"name"`
	Status   string `json:"status"`
	ExitCode int    `json:"exitCode"`
	Reason   string `json:"reason"`
	Started  string `json:"startedAt"`
	Finished string `json:"finishedAt"`
}

type run struct {
	ID       string `json:"id"`
	Number   string `json:"number"`
	Status   string `json:"status"`
	Reason   string `json:"reason"`
	Event    string `json:"event"`
	Branch   string `json:"branch"`
	Sha      string `json:"sha"`
	Created  string `json:"createdAt"`
	Started  string `json:"startedAt"`
	Finished string `json:"finishedAt"`
	Steps    []step `json:"steps"`
	Trust    string `json:"trust"`
	// RerunOf and RerunOfNumber name the run this one re-runs.
	RerunOf       string `json:"rerunOf"`
	RerunOfNumber string `json:"rerunOfNumber"`
	// Inputs are the pipeline's inputs of the run.
	Inputs map[string]string `json:"inputs"`
}

func duration(from, to string) string {
	a, err1 := time.Parse(time.RFC3339Nano, from)
	b, err2 := time.Parse(time.RFC3339Nano, to)
	if err1 != nil || err2 != nil {
		return ""
	}
	return b.Sub(a).Round(time.Millisecond).String()
}

func (a *api) listRuns(ctx context.Context, project string, q url.Values) error {
	var out struct {
		Runs []run `json:"runs"`
	}
	path := "/api/v1/projects/" + url.PathEscape(project) + "/runs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	if err := a.do(ctx, "GET", path, nil, &out); err != nil {
		return err
	}
	w := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "#\tRUN\tSTATUS\tEVENT\tBRANCH\tSHA\tCREATED\tDURATION")
	for _, r := range out.Runs {
		event := r.Event
		if r.RerunOf != "" {
			event += " (re-run of #" + r.RerunOfNumber + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Number, r.ID, r.Status, event, r.Branch, short(r.Sha), r.Created, duration(r.Started, r.Finished))
	}
	return w.Flush()
}

func (a *api) showRun(ctx context.Context, id string) error {
	var r run
	if err := a.do(ctx, "GET", "/api/v1/runs/"+url.PathEscape(id), nil, &r); err != nil {
		return err
	}
	fmt.Fprintf(a.io.Out, "run %s (#%s): %s", r.ID, r.Number, r.Status)
	if r.Reason != "" {
		fmt.Fprintf(a.io.Out, ": %s", r.Reason)
	}
	fmt.Fprintf(a.io.Out, "\nevent %s, branch %s, commit %s, trust %s\n", r.Event, r.Branch, short(r.Sha), r.Trust)
	if r.RerunOf != "" {
		fmt.Fprintf(a.io.Out, "re-run of run %s (#%s)\n", r.RerunOf, r.RerunOfNumber)
	}
	if len(r.Inputs) > 0 {
		kv := make([]string, 0, len(r.Inputs))
		for _, k := range slices.Sorted(maps.Keys(r.Inputs)) {
			kv = append(kv, k+"="+r.Inputs[k])
		}
		fmt.Fprintf(a.io.Out, "inputs %s\n", strings.Join(kv, " "))
	}
	fmt.Fprintln(a.io.Out)
	w := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "STEP\tSTATUS\tEXIT\tDURATION\tREASON")
	for _, s := range r.Steps {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", s.Name, s.Status, s.ExitCode, duration(s.Started, s.Finished), s.Reason)
	}
	return w.Flush()
}

func (a *api) events(ctx context.Context, id string) error {
	var out struct {
		Events []struct {
			Version string          `json:"version"`
			Type    string          `json:"type"`
			Time    string          `json:"time"`
			Payload json.RawMessage `json:"payload"`
		} `json:"events"`
	}
	if err := a.do(ctx, "GET", "/api/v1/runs/"+url.PathEscape(id)+"/events", nil, &out); err != nil {
		return err
	}
	for _, e := range out.Events {
		fmt.Fprintf(a.io.Out, "%s\t%s\t%s\t%s\n", e.Version, e.Time, strings.TrimPrefix(e.Type, "simpleci.events.v1."), e.Payload)
	}
	return nil
}

type chunk struct {
	Sequence string `json:"sequence"`
	Stream   string `json:"stream"`
	Text     string `json:"text"`
}

// logs prints the stored log, or with follow the live tail (server-sent events) until
// the log is complete.
func (a *api) logs(ctx context.Context, id string, follow bool) error {
	if !follow {
		// The stored log comes in pages of about 1 MiB: follow next_after to the end.
		after := "0"
		for {
			var out struct {
				Chunks    []chunk `json:"chunks"`
				NextAfter string  `json:"nextAfter"`
			}
			if err := a.do(ctx, "GET", "/api/v1/runs/"+url.PathEscape(id)+"/logs?after="+url.QueryEscape(after), nil, &out); err != nil {
				return err
			}
			for _, c := range out.Chunks {
				a.write(c)
			}
			if out.NextAfter == "" || out.NextAfter == "0" {
				return nil
			}
			if out.NextAfter == after {
				return fmt.Errorf("logs of %s: the server sent the page after %s again", id, after)
			}
			after = out.NextAfter
		}
	}
	resp, err := a.request(ctx, "GET", "/api/v1/runs/"+url.PathEscape(id)+"/logs:stream", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
	var ev string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			ev = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && ev == "log":
			var c chunk
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &c); err == nil {
				a.write(c)
			}
		case strings.HasPrefix(line, "data: ") && ev == "error":
			return errors.New(strings.TrimPrefix(line, "data: "))
		case ev == "end":
			return nil
		}
	}
	return sc.Err()
}

func (a *api) write(c chunk) {
	if c.Stream == "stderr" {
		io.WriteString(a.io.Err, c.Text)
		return
	}
	io.WriteString(a.io.Out, c.Text)
}

func (a *api) listProjects(ctx context.Context) error {
	var out struct {
		Projects []struct {
			ID         string   `json:"id"`
			Name       string   `json:"name"`
			Provider   string   `json:"provider"`
			Repository string   `json:"repository"`
			Events     []string `json:"events"`
			Tier       string   `json:"tier"`
		} `json:"projects"`
	}
	if err := a.do(ctx, "GET", "/api/v1/projects", nil, &out); err != nil {
		return err
	}
	w := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tID\tPROVIDER\tREPOSITORY\tEVENTS\tTIER")
	for _, p := range out.Projects {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.ID, p.Provider, p.Repository, strings.Join(p.Events, ","), p.Tier)
	}
	return w.Flush()
}

type apiToken struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Created  string `json:"createdAt"`
	Expires  string `json:"expiresAt"`
	LastUsed string `json:"lastUsedAt"`
	Token    string `json:"token"`
	Org      string `json:"organization"`
}

func (a *api) listTokens(ctx context.Context) error {
	var out struct {
		Tokens []apiToken `json:"tokens"`
	}
	if err := a.do(ctx, "GET", "/api/v1/tokens", nil, &out); err != nil {
		return err
	}
	w := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tORGANISATION\tCREATED\tEXPIRES\tLAST USED")
	for _, t := range out.Tokens {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Org, t.Created, def(t.Expires, "never"), def(t.LastUsed, "-"))
	}
	return w.Flush()
}

type apiRunner struct {
	Name     string `json:"name"`
	Created  string `json:"createdAt"`
	LastUsed string `json:"lastUsedAt"`
	Token    string `json:"token"`
}

func (a *api) listRunners(ctx context.Context) error {
	var out struct {
		Runners []apiRunner `json:"runners"`
	}
	if err := a.do(ctx, "GET", "/api/v1/runners", nil, &out); err != nil {
		return err
	}
	w := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tREGISTERED\tLAST USED")
	for _, r := range out.Runners {
		fmt.Fprintf(w, "%s\t%s\t%s\n", r.Name, r.Created, def(r.LastUsed, "-"))
	}
	return w.Flush()
}
