# client_client_stream.py
#
# The guide's client_client_stream.py. What differs from the guide: the
# server address is an optional first argument (default the guide's
# 'localhost:1337'), and the stubs come from the project's
# proto/fibonacci.proto, generated into generated/ (put on sys.path).
import os
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'generated'))

import grpc
import fibonacci_pb2
import fibonacci_pb2_grpc

def sendIndicies():
    try:
        while(True):
            valstr = input("enter an index (or nothing to stop): ")
            yield fibonacci_pb2.Number(value=int(valstr))
    except:
        print("done sending")

if __name__ == '__main__':
    address = sys.argv[1] if len(sys.argv) > 1 else 'localhost:1337'
    with grpc.insecure_channel(address) as channel:
        stub = fibonacci_pb2_grpc.FibonacciStub(channel)
        response = stub.SumIndicies(sendIndicies())
    print(f"Sum: {response.value}")
