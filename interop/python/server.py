# server.py
#
# The guide's server.py with all four methods, behaviour unchanged (a
# ThreadPoolExecutor of 10 workers; Python ints, so an answer past int32
# raises inside the handler and the client sees StatusCode.UNKNOWN; negative
# indices give 0 or empty streams). What differs from the guide:
#   - the address is an optional first argument, default the guide's
#     '[::]:1337' (e.g. `python server.py 127.0.0.1:0`);
#   - once started it prints one line, `listening on HOST:PORT`, with the
#     port actually bound (the one the system picked when 0 is given);
#   - the stubs come from the project's proto/fibonacci.proto, generated into
#     generated/ beside this file, which is put on sys.path.
import os
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'generated'))

from concurrent import futures
import logging

import grpc
import fibonacci_pb2
import fibonacci_pb2_grpc


class Fibonacci(fibonacci_pb2_grpc.FibonacciServicer):

    def calculate(self, index):
        a, b = 0, 1
        for _ in range(index):
            a, b = b, a + b
        return a

    def AtIndex(self, request : fibonacci_pb2.Number, context):
        result = self.calculate(request.value)
        return fibonacci_pb2.Number(value=result)

    def GetSequence(self, request, context):
        for index in range(request.value):
            result = self.calculate(index + 1)
            yield fibonacci_pb2.Number(value=result)

    def SumIndicies(self, requests, context):
        result = 0
        for request in requests:
            result += self.calculate(request.value)
        return fibonacci_pb2.Number(value=result)

    def StreamSequence(self, requests, context):
        index = 0
        for request in requests:
            for _ in range(request.value):
                index += 1
                result = self.calculate(index)
                yield fibonacci_pb2.Number(value=result)


def serve(address):
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=10)
    )
    fibonacci_pb2_grpc.add_FibonacciServicer_to_server(
        Fibonacci(), server
    )
    port = server.add_insecure_port(address)
    server.start()
    host = address.rsplit(':', 1)[0]
    print(f"listening on {host}:{port}", flush=True)
    server.wait_for_termination()


if __name__ == '__main__':
    logging.basicConfig()
    serve(sys.argv[1] if len(sys.argv) > 1 else '[::]:1337')
