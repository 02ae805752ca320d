package service

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/simpleci/simpleci/libs/eventstore/pgtest"
	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	"google.golang.org/grpc"
)

// oneProject resolves every name to the same project.
type oneProject struct {
	apiv1.ProjectInternalServiceClient
	p *apiv1.Project
}

func (o oneProject) ResolveProject(context.Context, *apiv1.ResolveProjectRequest, ...grpc.CallOption) (*apiv1.ResolvedProject, error) {
	return &apiv1.ResolvedProject{Project: o.p}, nil
}

// BenchmarkListRuns measures the run list query on PostgreSQL as one project's runs grow
// from 10k to 1M (issue 4: it must stay indexed, under 20 ms at 1M).
func BenchmarkListRuns(b *testing.B) {
	ctx := context.Background()
	db, err := sqldb.Open(ctx, pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s := &Service{db: db, cfg: Config{Projects: oneProject{p: &apiv1.Project{Id: "p1", OrgId: "o1"}}}}
	if err := s.migrate(ctx); err != nil {
		b.Fatal(err)
	}
	actx := auth.WithPrincipal(ctx, &authv1.Principal{UserId: "u", OrgId: "o1", Login: "u"})
	statuses := []string{"succeeded", "succeeded", "succeeded", "failed", "running", "queued", "timed_out", "errored", "cancelled"}
	events := []string{"push", "push", "pull_request", "tag", "manual"}
	have := 0
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		rows := make([][]any, 0, n-have)
		for i := have; i < n; i++ {
			created := base.Add(time.Duration(i) * time.Second).UnixNano()
			branch := fmt.Sprintf("b%d", i%50)
			if i%5000 == 0 {
				branch = "rare" // 2 per 10k runs
			}
			rows = append(rows, []any{fmt.Sprintf("r%08d", i), "o1", "p1", int64(i + 1), statuses[i%len(statuses)], "",
				events[i%len(events)], "refs/heads/" + branch, branch, "sha", "actor", "standard", created, created, created, int64(3)})
		}
		_, err := db.Pool.CopyFrom(ctx, pgx.Identifier{"sched_runs"}, []string{"run_id", "org_id", "project_id", "number", "status", "reason",
			"event", "ref", "branch", "sha", "actor", "tier", "created_at", "started_at", "finished_at", "version"}, pgx.CopyFromRows(rows))
		if err != nil {
			b.Fatal(err)
		}
		have = n
		if _, err := db.ExecContext(ctx, "ANALYZE sched_runs"); err != nil {
			b.Fatal(err)
		}
		for _, q := range []struct {
			name string
			req  *apiv1.ListRunsRequest
		}{
			{"newest", &apiv1.ListRunsRequest{Project: "p1"}},
			{"status=failed", &apiv1.ListRunsRequest{Project: "p1", Status: "failed"}},
			{"branch=b7", &apiv1.ListRunsRequest{Project: "p1", Branch: "b7"}},
			{"branch=rare", &apiv1.ListRunsRequest{Project: "p1", Branch: "rare"}},
			{"event=tag,since", &apiv1.ListRunsRequest{Project: "p1", Event: "tag", Since: base.Add(time.Duration(n/2) * time.Second).Format(time.RFC3339)}},
		} {
			b.Run(fmt.Sprintf("runs=%d/%s", n, q.name), func(b *testing.B) {
				resp, err := s.ListRuns(actx, q.req)
				if err != nil || len(resp.Runs) == 0 {
					b.Fatalf("list: %v, %d runs", err, len(resp.GetRuns()))
				}
				next := &apiv1.ListRunsRequest{Project: "p1", Status: q.req.Status, Branch: q.req.Branch, Event: q.req.Event, Since: q.req.Since, PageToken: resp.NextPageToken}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					req := q.req
					if i%2 == 1 {
						req = next // every other query is a second page, through the keyset token
					}
					if _, err := s.ListRuns(actx, req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
