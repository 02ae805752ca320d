package service

import (
	"context"
	"errors"

	"github.com/simpleci/simpleci/libs/eventstore"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Register adds RunService and RunnerService to a gRPC server, every method behind
// grpcError: handlers return the domain's errors as they are, and this one place turns
// them into status codes.
func (s *Service) Register(g *grpc.Server) {
	g.RegisterService(withErrorMapping(&apiv1.RunService_ServiceDesc), s)
	g.RegisterService(withErrorMapping(&runnerv1.RunnerService_ServiceDesc), s)
}

// withErrorMapping returns a copy of desc whose unary handlers map their errors with
// grpcError (the scheduler has no streaming methods; any would be left as they are).
func withErrorMapping(desc *grpc.ServiceDesc) *grpc.ServiceDesc {
	out := *desc
	out.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, m := range desc.Methods {
		h := m.Handler
		out.Methods[i] = grpc.MethodDesc{MethodName: m.MethodName, Handler: func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			resp, err := h(srv, ctx, dec, in)
			return resp, grpcError(ctx, err)
		}}
	}
	return &out
}

// grpcError maps an error to its gRPC status: the domain's rule violations to the codes
// the API documents, the caller's own cancellation as such, a status already chosen as
// it is, and anything else as Internal.
func grpcError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, domain.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, domain.ErrTransition), errors.Is(err, domain.ErrLeaseLost):
		code = codes.FailedPrecondition
	case errors.Is(err, domain.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, domain.ErrNotHolder):
		code = codes.PermissionDenied
	case errors.Is(err, eventstore.ErrConcurrency):
		code = codes.Aborted // contention outlasted the retries: the caller may try again
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	}
	return status.Error(code, err.Error())
}
