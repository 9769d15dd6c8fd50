# client_bidirectional_stream.py
#
# The guide's client_bidirectional_stream.py, its one-second sleep before
# each prompt included (it is what lets the replies print before the next
# prompt). What differs from the guide: the server address is an optional
# first argument (default the guide's 'localhost:1337'), and the stubs come
# from the project's proto/fibonacci.proto, generated into generated/ (put
# on sys.path).
import os
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'generated'))

import grpc
from time import sleep
import fibonacci_pb2
import fibonacci_pb2_grpc

def nextIncrement():
    try:
        while(True):
            sleep(1)
            value = int(input("enter the next increment "+
                "(or nothing to stop): "))
            yield fibonacci_pb2.Number(value=value)
    except:
        print("done sending")

if __name__ == '__main__':
    address = sys.argv[1] if len(sys.argv) > 1 else 'localhost:1337'
    with grpc.insecure_channel(address) as channel:
        stub = fibonacci_pb2_grpc.FibonacciStub(channel)
        responses = stub.StreamSequence(nextIncrement())
        index = 0
        for response in responses:
            index += 1
            print(f"Fibonacci #{index}: {response.value}")
