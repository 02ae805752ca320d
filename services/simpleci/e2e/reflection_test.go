package e2e_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/platform/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	grpcstatus "google.golang.org/grpc/status"
)

// TestReflectionServices: each service process describes what it serves through gRPC
// server reflection, as grpcurl asks (ListServices), to a caller with a token; together
// they list every public API service; without a token the answer is Unauthenticated.
// The standard health service answers SERVING for the process and for each service it
// lists, to a peer service.
func TestReflectionServices(t *testing.T) {
	c := startCluster(t, 1)
	var all []string
	for _, svc := range []string{"auth", "project", "scheduler", "log", "gateway"} {
		listed, err := listServices(t, c.grpc[svc], c.api.token)
		if err != nil {
			t.Fatalf("%s: reflection: %v", svc, err)
		}
		if !slices.Contains(listed, "grpc.health.v1.Health") || !slices.Contains(listed, "grpc.reflection.v1.ServerReflection") {
			t.Errorf("%s lists %v: no health or reflection service", svc, listed)
		}
		all = append(all, listed...)
		for _, name := range append([]string{""}, listed...) {
			if st, err := healthStatus(t, c.grpc[svc], internalToken(c), name); err != nil || st != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("%s: health of %q: %v %v, want SERVING", svc, name, st, err)
			}
		}
		if _, err := listServices(t, c.grpc[svc], ""); grpcstatus.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: reflection without a token: %v, want Unauthenticated", svc, err)
		}
	}
	for _, want := range []string{"simpleci.api.v1.ProjectService", "simpleci.api.v1.RunService", "simpleci.api.v1.LogService",
		"simpleci.api.v1.TokenService", "simpleci.api.v1.MemberService", "simpleci.api.v1.TeamService",
		"simpleci.api.v1.OrganizationService", "simpleci.api.v1.GitHubService", "simpleci.runner.v1.RunnerService"} {
		if !slices.Contains(all, want) {
			t.Errorf("no process lists %s (all: %s)", want, strings.Join(all, ", "))
		}
	}
}

// healthStatus asks the process at addr for the health of service as a peer service
// (the gateway's identity) does.
func healthStatus(t *testing.T, addr, secret, service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	token, err := auth.IdentityToken(secret, "gateway")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := auth.Dial(addr, token)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	return resp.GetStatus(), err
}

// listServices asks the process at addr what it serves, as grpcurl list does.
func listServices(t *testing.T, addr, token string) ([]string, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	// A refused stream may end before the request is sent (Send says io.EOF); its
	// status comes with Recv, as gRPC documents.
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	return names, stream.CloseSend()
}
