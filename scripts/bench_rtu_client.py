"""The closed-loop master of scripts/bench-rtu.sh: FC 3, 10 holding registers from unit 1.

`direct PATH N`: RTU frames on the serial device PATH (pyserial). `NAME HOST:PORT N`: Modbus/TCP
to the gateway. Frames are encoded here by hand (independent of zonegate's codec); every answer
is checked (length, function, byte count, CRC for RTU). Prints: name tx/s p50_us p99_us errors.
"""

import socket
import struct
import sys
import time


def crc16(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def main() -> None:
    name, target, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pdu = bytes([3, 0, 0, 0, 10])
    lat = []
    errors = 0
    if name == "direct":
        import serial

        port = serial.Serial(target, 19200, timeout=1)
        body = bytes([1]) + pdu
        frame = body + struct.pack("<H", crc16(body))
        want = 5 + 20

        def call() -> bool:
            port.write(frame)
            got = port.read(want)
            return len(got) == want and got[1] == 3 and got[2] == 20 and crc16(got[:-2]) == struct.unpack("<H", got[-2:])[0]
    else:
        host, p = target.rsplit(":", 1)
        sock = socket.create_connection((host, int(p)), timeout=2)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tid = [0]
        want = 7 + 2 + 20

        def call() -> bool:
            tid[0] = (tid[0] + 1) & 0xFFFF
            sock.sendall(struct.pack(">HHHB", tid[0], 0, len(pdu) + 1, 1) + pdu)
            got = b""
            while len(got) < want:
                chunk = sock.recv(want - len(got))
                if not chunk:
                    return False
                got += chunk
            return struct.unpack(">H", got[:2])[0] == tid[0] and got[7] == 3 and got[8] == 20

    for _ in range(min(50, count)):  # warm-up
        call()
    start = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        ok = call()
        lat.append(time.perf_counter() - t0)
        errors += 0 if ok else 1
    total = time.perf_counter() - start
    lat.sort()
    p50 = lat[len(lat) // 2] * 1e6
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6
    print(f"{name} {count / total:.1f} {p50:.1f} {p99:.1f} {errors}")


if __name__ == "__main__":
    main()
