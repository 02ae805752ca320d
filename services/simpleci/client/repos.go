package client

import (
	"context"
	"fmt"
	"net/url"
	"text/tabwriter"
)

// maxRepoPages bounds `repos list`: GitHub pages of 100, so 10 000 repositories.
const maxRepoPages = 100

// listRepos runs `simpleci repos list`: every page of GET /api/v1/github/repositories,
// the GitHub repositories the caller administers (a project of provider github takes
// one of them as its repository).
func (a *api) listRepos(ctx context.Context) error {
	w := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "REPOSITORY\tVISIBILITY\tDEFAULT BRANCH\tURL")
	token := ""
	for range maxRepoPages {
		var out struct {
			Repositories []struct {
				FullName      string `json:"fullName"`
				Private       bool   `json:"private"`
				DefaultBranch string `json:"defaultBranch"`
				HTMLURL       string `json:"htmlUrl"`
			} `json:"repositories"`
			NextPageToken string `json:"nextPageToken"`
		}
		q := url.Values{"page_size": {"100"}}
		if token != "" {
			q.Set("page_token", token)
		}
		if err := a.do(ctx, "GET", "/api/v1/github/repositories?"+q.Encode(), nil, &out); err != nil {
			return err
		}
		for _, r := range out.Repositories {
			vis := "public"
			if r.Private {
				vis = "private"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.FullName, vis, r.DefaultBranch, r.HTMLURL)
		}
		if token = out.NextPageToken; token == "" {
			break
		}
	}
	return w.Flush()
}
