"""What the servers answer: the Fibonacci numbers and every status message
the suite asserts."""

# F(0)..F(46), computed independently of both servers.
FIB = [0, 1]
while len(FIB) < 47:
    FIB.append(FIB[-1] + FIB[-2])
assert FIB[46] == 1836311903 and FIB[46] + FIB[45] > 2**31 - 1

# The Rust server's refusals (its exact details strings).
INDEX_47 = "index 47 is past 46, the largest index whose Fibonacci number fits in an int32"
COUNT_47 = "count 47 is past 46, the longest sequence whose Fibonacci numbers fit in an int32"
INDEX_NEGATIVE = "index -1 is negative; indices start at 0"
COUNT_NEGATIVE = "count -1 is negative; a sequence has 0 to 46 numbers"
INCREMENT_NEGATIVE = "increment -1 is negative; an increment is 0 or more"
SUM_46_46 = ("adding F(46) = 1836311903 to the sum 1836311903 gives 3672623806, "
             "past 2147483647, the largest int32")
INCREMENT_44_3 = ("increment 3 would carry the running index from 44 to 47, past 46, "
                  "the largest index whose Fibonacci number fits in an int32")

# The guide's Python server: the ValueError protobuf raises for a value past
# int32, as gRPC Python reports an exception in a handler.
PY_CALL_47 = "Exception calling application: Value out of range: 2971215073"
PY_ITERATING_47 = "Exception iterating responses: Value out of range: 2971215073"
PY_CALL_SUM_46_46 = "Exception calling application: Value out of range: 3672623806"


def lines(first, last):
    """The guide's "Fibonacci #i: F(i)" lines for i in first..=last."""
    return "".join(f"Fibonacci #{i}: {FIB[i]}\n" for i in range(first, last + 1))
