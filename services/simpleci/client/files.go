package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"

	"github.com/simpleci/simpleci/libs/engine"
)

// files runs the artifacts and caches commands.
func (a *api) files(ctx context.Context, cmd string, rest []string, output, scope string) error {
	switch {
	case cmd == "artifacts" && len(rest) == 2 && rest[0] == "list":
		return a.listArtifacts(ctx, rest[1])
	case cmd == "artifacts" && len(rest) == 3 && rest[0] == "download":
		return a.downloadArtifact(ctx, rest[1], rest[2], output)
	case cmd == "caches" && len(rest) == 2 && rest[0] == "list":
		return a.listCaches(ctx, rest[1])
	case cmd == "caches" && len(rest) == 3 && rest[0] == "delete":
		var out struct {
			Deleted int `json:"deleted"`
		}
		path := "/api/v1/projects/" + url.PathEscape(rest[1]) + "/caches/" + url.PathEscape(rest[2])
		if scope != "" {
			path += "?scope=" + url.QueryEscape(scope)
		}
		if err := a.do(ctx, "DELETE", path, nil, &out); err != nil {
			return err
		}
		fmt.Fprintf(a.io.Out, "%d cache entries %q deleted\n", out.Deleted, rest[2])
		return nil
	}
	return errUsage
}

// size formats a JSON int64 (a string) of bytes.
func size(s string) string {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return s
	}
	return engine.FormatBytes(n)
}

func (a *api) listArtifacts(ctx context.Context, run string) error {
	var out struct {
		Artifacts []struct {
			Name    string `json:"name"`
			Size    string `json:"size"`
			Sha256  string `json:"sha256"`
			Created string `json:"createdAt"`
			Expires string `json:"expiresAt"`
		} `json:"artifacts"`
	}
	if err := a.do(ctx, "GET", "/api/v1/runs/"+url.PathEscape(run)+"/artifacts", nil, &out); err != nil {
		return err
	}
	w := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSIZE\tCREATED\tEXPIRES\tSHA256")
	for _, x := range out.Artifacts {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", x.Name, size(x.Size), x.Created, x.Expires, x.Sha256)
	}
	return w.Flush()
}

func (a *api) listCaches(ctx context.Context, project string) error {
	var out struct {
		Entries []struct {
			Key     string `json:"key"`
			Scope   string `json:"scope"`
			Size    string `json:"size"`
			Created string `json:"createdAt"`
			Expires string `json:"expiresAt"`
		} `json:"entries"`
		Total string `json:"totalBytes"`
	}
	if err := a.do(ctx, "GET", "/api/v1/projects/"+url.PathEscape(project)+"/caches", nil, &out); err != nil {
		return err
	}
	w := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KEY\tSCOPE\tSIZE\tCREATED\tEXPIRES")
	for _, e := range out.Entries {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", e.Key, e.Scope, size(e.Size), e.Created, e.Expires)
	}
	fmt.Fprintf(w, "total\t\t%s\n", size(def(out.Total, "0")))
	return w.Flush()
}

// downloadArtifact streams an artifact to output (a file written under a temporary name
// and renamed once its sha256 matched the server's, or stdout).
func (a *api) downloadArtifact(ctx context.Context, run, name, output string) error {
	resp, err := a.request(ctx, "GET", "/api/v1/runs/"+url.PathEscape(run)+"/artifacts/"+url.PathEscape(name), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	want := resp.Header.Get("X-Checksum-Sha256")
	h := sha256.New()
	var w io.Writer = a.io.Out
	var tmp *os.File
	if output != "-" {
		if output == "" {
			output = filepath.Base(name) + ".tar.zst"
		}
		if tmp, err = os.CreateTemp(filepath.Dir(output), ".simpleci-download-*"); err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		w = tmp
	}
	n, err := io.Copy(io.MultiWriter(w, h), resp.Body)
	if err != nil {
		return fmt.Errorf("download %s: %w", name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); want != "" && got != want || resp.ContentLength >= 0 && n != resp.ContentLength {
		return fmt.Errorf("download %s: got %d bytes with sha256 %s, the server stored %d with %s", name, n, got, resp.ContentLength, want)
	}
	if tmp == nil {
		return nil
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), output); err != nil {
		return err
	}
	fmt.Fprintf(a.io.Err, "%s: %s, sha256 %s\n", output, engine.FormatBytes(n), want)
	return nil
}
