# client_server_stream.py
#
# The guide's client_server_stream.py. What differs from the guide: the
# server address is an optional first argument (default the guide's
# 'localhost:1337'), and the stubs come from the project's
# proto/fibonacci.proto, generated into generated/ (put on sys.path).
import os
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'generated'))

import grpc
import fibonacci_pb2
import fibonacci_pb2_grpc

if __name__ == '__main__':
    address = sys.argv[1] if len(sys.argv) > 1 else 'localhost:1337'
    with grpc.insecure_channel(address) as channel:
        stub = fibonacci_pb2_grpc.FibonacciStub(channel)
        value = int(input("enter an index integer: "))
        request = fibonacci_pb2.Number(value=value)
        responses = stub.GetSequence(request)
        index = 0
        for response in responses:
            index += 1
            print(f"Fibonacci #{index}: {response.value}")
