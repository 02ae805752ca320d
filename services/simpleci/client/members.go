package client

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
)

// errUsage asks Main to print the usage.
var errUsage = errors.New("usage")

type apiMember struct {
	Login   string `json:"login"`
	Role    string `json:"role"`
	Created string `json:"createdAt"`
	Token   string `json:"token"`
}

// members runs `simpleci members list|add|set|remove`.
func (a *api) members(ctx context.Context, rest []string, role string) error {
	switch {
	case len(rest) == 1 && rest[0] == "list":
		var out struct {
			Members []apiMember `json:"members"`
		}
		if err := a.do(ctx, "GET", "/api/v1/members", nil, &out); err != nil {
			return err
		}
		w := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "LOGIN\tROLE\tSINCE")
		for _, m := range out.Members {
			fmt.Fprintf(w, "%s\t%s\t%s\n", m.Login, m.Role, m.Created)
		}
		return w.Flush()
	case len(rest) == 2 && rest[0] == "add" && role != "":
		var m apiMember
		if err := a.do(ctx, "POST", "/api/v1/members", map[string]string{"login": rest[1], "role": role}, &m); err != nil {
			return err
		}
		fmt.Fprintf(a.io.Out, "user %s added as %s; its first API token is shown only now:\n%s\n", m.Login, m.Role, m.Token)
		return nil
	case len(rest) == 2 && rest[0] == "set" && role != "":
		var m apiMember
		if err := a.do(ctx, "PATCH", "/api/v1/members/"+url.PathEscape(rest[1]), map[string]string{"role": role}, &m); err != nil {
			return err
		}
		fmt.Fprintf(a.io.Out, "%s is now %s (within 5 s everywhere)\n", m.Login, m.Role)
		return nil
	case len(rest) == 2 && rest[0] == "remove":
		if err := a.do(ctx, "DELETE", "/api/v1/members/"+url.PathEscape(rest[1]), nil, &struct{}{}); err != nil {
			return err
		}
		fmt.Fprintf(a.io.Out, "%s removed; its tokens are revoked\n", rest[1])
		return nil
	}
	return errUsage
}

// updateProject runs `simpleci projects update`: only the flags given change.
func (a *api) updateProject(ctx context.Context, project, events, tier, network string) error {
	body := map[string]any{}
	if events != "" {
		body["events"] = strings.Split(events, ",")
	}
	if tier != "" {
		body["tier"] = tier
	}
	if network != "" {
		body["network"] = network
	}
	if len(body) == 0 {
		return errors.New("projects update: give --events, --tier or --network")
	}
	var p struct {
		Name    string   `json:"name"`
		Events  []string `json:"events"`
		Tier    string   `json:"tier"`
		Network string   `json:"network"`
	}
	if err := a.do(ctx, "PATCH", "/api/v1/projects/"+url.PathEscape(project), body, &p); err != nil {
		return err
	}
	fmt.Fprintf(a.io.Out, "project %s: events %s, tier %s, network %s\n", p.Name, strings.Join(p.Events, ","), p.Tier, p.Network)
	return nil
}
