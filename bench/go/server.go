// The grpc-go peer of the Rust server, for `make bench` (bench/run.py):
// the same fibonacci.Fibonacci service (proto/fibonacci.proto) on grpc-go
// 1.33, the version the performance issue measured, so both servers run in
// the same benchmark on the same machine.
//
// It answers exactly as the Rust server does (src/fibonacci.rs,
// src/status.rs): the values come from a table of F(0)..F(46), the
// Fibonacci numbers that fit an int32; GetSequence(n) streams F(1)..F(n);
// SumIndicies answers the sum of F(index) over its requests;
// StreamSequence keeps a running index and answers each increment k with the
// next k numbers. A negative input is INVALID_ARGUMENT, an answer past
// int32 is OUT_OF_RANGE, with the Rust server's messages word for word.
//
// No per-call logging. Prints "listening on HOST:PORT (...)" as its first
// line once it accepts connections; SIGTERM or SIGINT stops it (calls still
// running get -grace to finish).
//
//	go-server -addr 127.0.0.1:0
//
// fibonacci.pb.go and fibonacci_grpc.pb.go are generated (gen.sh); this is
// the only hand-written file.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maxIndex is the largest index whose Fibonacci number fits in an int32.
const maxIndex = 46

// fib holds F(0)..F(46).
var fib = func() (t [maxIndex + 1]int32) {
	t[1] = 1
	for i := 2; i <= maxIndex; i++ {
		t[i] = t[i-1] + t[i-2]
	}
	return t
}()

func atIndex(index int32) (int32, error) {
	switch {
	case index < 0:
		return 0, status.Errorf(codes.InvalidArgument, "index %d is negative; indices start at 0", index)
	case index > maxIndex:
		return 0, status.Errorf(codes.OutOfRange,
			"index %d is past %d, the largest index whose Fibonacci number fits in an int32", index, maxIndex)
	}
	return fib[index], nil
}

type fibonacciServer struct {
	UnimplementedFibonacciServer
}

func (fibonacciServer) AtIndex(_ context.Context, request *Number) (*Number, error) {
	value, err := atIndex(request.Value)
	if err != nil {
		return nil, err
	}
	return &Number{Value: value}, nil
}

func (fibonacciServer) GetSequence(request *Number, stream Fibonacci_GetSequenceServer) error {
	count := request.Value
	switch {
	case count < 0:
		return status.Errorf(codes.InvalidArgument,
			"count %d is negative; a sequence has 0 to %d numbers", count, maxIndex)
	case count > maxIndex:
		return status.Errorf(codes.OutOfRange,
			"count %d is past %d, the longest sequence whose Fibonacci numbers fit in an int32", count, maxIndex)
	}
	for _, value := range fib[1 : count+1] {
		if err := stream.Send(&Number{Value: value}); err != nil {
			return err
		}
	}
	return nil
}

func (fibonacciServer) SumIndicies(stream Fibonacci_SumIndiciesServer) error {
	var total int32
	for {
		request, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&Number{Value: total})
		}
		if err != nil {
			return err
		}
		value, err := atIndex(request.Value)
		if err != nil {
			return err
		}
		if int64(total)+int64(value) > math.MaxInt32 {
			return status.Errorf(codes.OutOfRange,
				"adding F(%d) = %d to the sum %d gives %d, past %d, the largest int32",
				request.Value, value, total, int64(total)+int64(value), math.MaxInt32)
		}
		total += value
	}
}

func (fibonacciServer) StreamSequence(stream Fibonacci_StreamSequenceServer) error {
	var index int32 // the index of the last number sent
	for {
		request, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		increment := request.Value
		if increment < 0 {
			return status.Errorf(codes.InvalidArgument,
				"increment %d is negative; an increment is 0 or more", increment)
		}
		end := int64(index) + int64(increment)
		if end > maxIndex {
			return status.Errorf(codes.OutOfRange,
				"increment %d would carry the running index from %d to %d, past %d, "+
					"the largest index whose Fibonacci number fits in an int32",
				increment, index, end, maxIndex)
		}
		for _, value := range fib[index+1 : end+1] {
			if err := stream.Send(&Number{Value: value}); err != nil {
				return err
			}
		}
		index = int32(end)
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:1337", "address to listen on, host:port (port 0: any free port)")
	streams := flag.Uint("max-concurrent-streams", 256,
		"concurrent calls per connection (256: room for bench/run.py's 250 held calls per connection)")
	grace := flag.Duration("grace", 5*time.Second, "on SIGTERM/SIGINT, how long running calls get to finish")
	flag.Parse()

	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-server: %v\n", err)
		os.Exit(1)
	}
	server := grpc.NewServer(
		grpc.MaxConcurrentStreams(uint32(*streams)),
		grpc.MaxRecvMsgSize(64*1024), // the Rust server's --max-message-size
		grpc.MaxSendMsgSize(64*1024),
	)
	RegisterFibonacciServer(server, fibonacciServer{})

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		done := make(chan struct{})
		go func() { server.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(*grace):
			server.Stop()
		}
	}()

	// os.Stdout is unbuffered: the line is out before the first Accept.
	fmt.Printf("listening on %s (grpc-go %s, %s, GOMAXPROCS %d)\n",
		listener.Addr(), grpc.Version, runtime.Version(), runtime.GOMAXPROCS(0))
	if err := server.Serve(listener); err != nil {
		fmt.Fprintf(os.Stderr, "go-server: %v\n", err)
		os.Exit(1)
	}
}
