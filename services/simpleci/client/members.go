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
	Login     string   `json:"login"`
	Role      string   `json:"role"`
	Created   string   `json:"createdAt"`
	Token     string   `json:"token"`
	Teams     []string `json:"teams"`
	Effective string   `json:"effectiveRole"`
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
		fmt.Fprintln(w, "LOGIN\tROLE\tTEAMS\tEFFECTIVE\tSINCE")
		for _, m := range out.Members {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", m.Login, m.Role, def(strings.Join(m.Teams, ","), "-"), m.Effective, m.Created)
		}
		return w.Flush()
	case len(rest) == 2 && rest[0] == "add" && role != "":
		var m apiMember
		if err := a.do(ctx, "POST", "/api/v1/members", map[string]string{"login": rest[1], "role": role}, &m); err != nil {
			return err
		}
		if m.Token == "" {
			fmt.Fprintf(a.io.Out, "%s added as %s; it makes a token for this organisation with: simpleci tokens create NAME --org ORG\n", m.Login, m.Role)
			return nil
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
		fmt.Fprintf(a.io.Out, "%s removed; its tokens of this organisation are revoked\n", rest[1])
		return nil
	}
	return errUsage
}

// orgs runs `simpleci orgs list|create`.
func (a *api) orgs(ctx context.Context, rest []string) error {
	type apiOrg struct {
		Name    string `json:"name"`
		Role    string `json:"role"`
		Created string `json:"createdAt"`
		Current bool   `json:"current"`
	}
	switch {
	case len(rest) == 1 && rest[0] == "list":
		var out struct {
			Organizations []apiOrg `json:"organizations"`
		}
		if err := a.do(ctx, "GET", "/api/v1/organizations", nil, &out); err != nil {
			return err
		}
		w := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tROLE\tCREATED")
		for _, o := range out.Organizations {
			name := o.Name
			if o.Current {
				name += " *"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", name, o.Role, o.Created)
		}
		return w.Flush()
	case len(rest) == 2 && rest[0] == "create":
		var o apiOrg
		if err := a.do(ctx, "POST", "/api/v1/organizations", map[string]string{"name": rest[1]}, &o); err != nil {
			return err
		}
		fmt.Fprintf(a.io.Out, "organisation %s created, you own it; act in it with a token of it: simpleci tokens create NAME --org %s\n", o.Name, o.Name)
		return nil
	}
	return errUsage
}

type apiTeam struct {
	Name    string   `json:"name"`
	Role    string   `json:"role"`
	Members []string `json:"members"`
}

func (t apiTeam) String() string {
	return fmt.Sprintf("team %s (%s): %s", t.Name, t.Role, def(strings.Join(t.Members, ", "), "no members"))
}

// teams runs `simpleci teams list|show|create|set|delete|add|remove`.
func (a *api) teams(ctx context.Context, rest []string, role string) error {
	var t apiTeam
	var err error
	switch {
	case len(rest) == 1 && rest[0] == "list":
		var out struct {
			Teams []apiTeam `json:"teams"`
		}
		if err := a.do(ctx, "GET", "/api/v1/teams", nil, &out); err != nil {
			return err
		}
		w := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "TEAM\tROLE\tMEMBERS")
		for _, t := range out.Teams {
			fmt.Fprintf(w, "%s\t%s\t%s\n", t.Name, t.Role, def(strings.Join(t.Members, ","), "-"))
		}
		return w.Flush()
	case len(rest) == 2 && rest[0] == "show":
		err = a.do(ctx, "GET", "/api/v1/teams/"+url.PathEscape(rest[1]), nil, &t)
	case len(rest) == 2 && rest[0] == "create" && role != "":
		err = a.do(ctx, "POST", "/api/v1/teams", map[string]string{"name": rest[1], "role": role}, &t)
	case len(rest) == 2 && rest[0] == "set" && role != "":
		err = a.do(ctx, "PATCH", "/api/v1/teams/"+url.PathEscape(rest[1]), map[string]string{"role": role}, &t)
	case len(rest) == 3 && rest[0] == "add":
		err = a.do(ctx, "PUT", "/api/v1/teams/"+url.PathEscape(rest[1])+"/members/"+url.PathEscape(rest[2]), nil, &t)
	case len(rest) == 2 && rest[0] == "delete":
		if err := a.do(ctx, "DELETE", "/api/v1/teams/"+url.PathEscape(rest[1]), nil, &struct{}{}); err != nil {
			return err
		}
		fmt.Fprintf(a.io.Out, "team %s deleted; its members keep their own roles (within 5 s everywhere)\n", rest[1])
		return nil
	case len(rest) == 3 && rest[0] == "remove":
		if err := a.do(ctx, "DELETE", "/api/v1/teams/"+url.PathEscape(rest[1])+"/members/"+url.PathEscape(rest[2]), nil, &struct{}{}); err != nil {
			return err
		}
		fmt.Fprintf(a.io.Out, "%s removed from team %s (within 5 s everywhere)\n", rest[2], rest[1])
		return nil
	default:
		return errUsage
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(a.io.Out, t)
	return nil
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
