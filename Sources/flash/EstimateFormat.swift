import Foundation
import FlashCore

/// Number formatting, tables and JSON output shared by `flash estimate` and `flash io`.
enum EstimateFormat {
    /// 124439808 → "124,439,808".
    static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out += "," }
            out.append(character)
        }
        return (value < 0 ? "-" : "") + out
    }

    /// A quantity with an SI prefix: 1.5e12 → "1.50 T".
    static func si(_ value: Double, _ unit: String) -> String {
        let prefixes: [(Double, String)] = [(1e24, "Y"), (1e21, "Z"), (1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        for (scale, prefix) in prefixes where value.magnitude >= scale {
            return String(format: "%.2f %@%@", value / scale, prefix, unit)
        }
        return String(format: "%.2f %@", value, unit)
    }

    /// Bytes in GiB, or in MiB below 1 GiB so that small models (flash train's presets) do not print 0.00.
    static func gibibytes(_ bytes: Double) -> String {
        bytes >= 1_073_741_824 || bytes == 0 ? String(format: "%.2f GiB", bytes / 1_073_741_824)
            : String(format: "%.2f MiB", bytes / 1_048_576)
    }

    static func duration(_ seconds: Double) -> String {
        switch seconds {
        case ..<1: String(format: "%.3f ms", seconds * 1e3)
        case ..<3600: String(format: "%.1f s", seconds)
        case ..<(86400 * 2): String(format: "%.1f hours", seconds / 3600)
        default: String(format: "%.1f days", seconds / 86400)
        }
    }

    /// Prints rows as an aligned table: the first column left-aligned, the rest right-aligned.
    static func table(_ header: [String], _ rows: [[String]]) {
        let all = [header] + rows
        let widths = (0..<header.count).map { column in all.map { $0[column].count }.max() ?? 0 }
        func line(_ row: [String]) -> String {
            row.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                return column == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        print(line(header))
        print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "))
        for row in rows { print(line(row)) }
    }

    static func printJSON(_ object: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    /// Parses a string option into an enum, naming the flag and the choices when it does not match.
    static func choice<T: RawRepresentable & CaseIterable>(_ value: String, _ flag: String, as type: T.Type) throws -> T
        where T.RawValue == String {
        guard let match = T.allCases.first(where: { $0.rawValue.lowercased() == value.lowercased() }) else {
            throw InvalidArgument(flag, expected: "one of " + T.allCases.map(\.rawValue).joined(separator: ", "), got: value)
        }
        return match
    }
}
