// pgJDBC (Debian's libpostgresql-jdbc-java) through pgate, unmodified: server-side prepared
// statements, batches (pipelined, one Sync), transactions, COPY in and out (CopyManager), a
// denied statement followed by a normal one, a denied statement in a batch rolling the batch
// back, a cancel, LISTEN/NOTIFY. Run by dataplane/tests/drivers.rs as a single-file program
// (env: PGATE_HOST, PGATE_PORT, PGATE_DB, PGATE_TOKEN, PGATE_TAG). Exits non-zero naming the
// failing check.
import java.io.StringReader;
import java.io.StringWriter;
import java.sql.BatchUpdateException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.postgresql.copy.CopyManager;

public class PgJdbc {
    static void check(boolean cond, String what) {
        if (!cond) {
            System.err.println("FAILED: " + what);
            System.exit(1);
        }
    }

    static Connection connect() throws SQLException {
        String url = "jdbc:postgresql://" + System.getenv("PGATE_HOST") + ":" + System.getenv("PGATE_PORT")
                + "/" + System.getenv("PGATE_DB") + "?sslmode=disable&prepareThreshold=2";
        Properties p = new Properties();
        p.setProperty("user", "analyst");
        p.setProperty("password", System.getenv("PGATE_TOKEN"));
        return DriverManager.getConnection(url, p);
    }

    static long count(Connection c, String payload) throws SQLException {
        try (PreparedStatement s = c.prepareStatement("select count(*) from events where payload = ?")) {
            s.setString(1, payload);
            try (ResultSet r = s.executeQuery()) {
                r.next();
                return r.getLong(1);
            }
        }
    }

    static String sqlState(Runnable0 r) {
        try {
            r.run();
            return "none";
        } catch (SQLException e) {
            return e.getSQLState();
        }
    }

    interface Runnable0 {
        void run() throws SQLException;
    }

    public static void main(String[] args) throws Exception {
        String tag = System.getenv("PGATE_TAG") + "-jdbc";
        try (Connection c = connect()) {
            // Prepared statements: from the second execution on, pgJDBC uses a named
            // server-side statement (prepareThreshold=2).
            try (PreparedStatement s = c.prepareStatement("select name from customers where id = ?")) {
                for (int id : new int[] {1, 2, 1, 2, 1}) {
                    s.setInt(1, id);
                    try (ResultSet r = s.executeQuery()) {
                        check(r.next() && !r.getString(1).isEmpty(), "prepared select");
                    }
                }
            }
            // A batch: pipelined Bind/Execute, one Sync.
            c.setAutoCommit(false);
            try (PreparedStatement s = c.prepareStatement("insert into events(payload) values (?)")) {
                for (int i = 0; i < 3; i++) {
                    s.setString(1, tag);
                    s.addBatch();
                }
                check(s.executeBatch().length == 3, "batch of three");
            }
            c.rollback();
            check(count(c, tag) == 0, "rollback");
            try (PreparedStatement s = c.prepareStatement("insert into events(payload) values (?)")) {
                s.setString(1, tag);
                s.executeUpdate();
            }
            c.commit();
            check(count(c, tag) == 1, "commit");
            c.setAutoCommit(true);
            // COPY in and out.
            CopyManager copy = c.unwrap(PGConnection.class).getCopyAPI();
            String rows = tag + "-copy\n" + tag + "-copy\n" + tag + "-copy\n";
            check(copy.copyIn("copy events(payload) from stdin", new StringReader(rows)) == 3, "copy in");
            StringWriter out = new StringWriter();
            long n = copy.copyOut("copy (select payload from events where payload = '" + tag + "-copy') to stdout", out);
            check(n == 3 && out.toString().equals(rows), "copy out: " + out);
            // A denied statement, then a normal one.
            try (Statement s = c.createStatement()) {
                check(sqlState(() -> s.executeQuery("select ssn from customers")).equals("42501"), "denial code");
                try (ResultSet r = s.executeQuery("select 1")) {
                    check(r.next() && r.getInt(1) == 1, "usable after a denial");
                }
            }
            // In a transaction the denial fails it: 25P02 after, the commit rolls back.
            c.setAutoCommit(false);
            try (Statement s = c.createStatement()) {
                s.executeUpdate("insert into events(payload) values ('" + tag + "-tx')");
                check(sqlState(() -> s.executeQuery("select ssn from customers")).equals("42501"), "denied in tx");
                check(sqlState(() -> s.executeQuery("select 1")).equals("25P02"), "25P02 after the denial");
            }
            // pgJDBC may report the server's ROLLBACK answer to COMMIT as an error.
            sqlState(c::commit);
            c.setAutoCommit(true);
            check(count(c, tag + "-tx") == 0, "the failed transaction committed nothing");
            // A denied statement in a batch: the whole batch is rolled back (one implicit
            // transaction up to Sync), as PostgreSQL does for its own errors.
            try (Statement s = c.createStatement()) {
                s.addBatch("insert into events(payload) values ('" + tag + "-batch')");
                s.addBatch("delete from customers");
                s.addBatch("insert into events(payload) values ('" + tag + "-batch')");
                try {
                    s.executeBatch();
                    check(false, "a batch with a denied statement ran");
                } catch (BatchUpdateException e) {
                    SQLException cause = e.getNextException() != null ? e.getNextException() : e;
                    check("42501".equals(cause.getSQLState()), "batch denial code " + cause.getSQLState());
                }
            }
            check(count(c, tag + "-batch") == 0, "the batch before the denial was rolled back");
            // LISTEN / NOTIFY.
            try (Statement s = c.createStatement()) {
                s.execute("listen pgate_drivers_j");
                s.execute("notify pgate_drivers_j, 'yo'");
            }
            PGNotification[] got = c.unwrap(PGConnection.class).getNotifications(5000);
            check(got != null && got.length == 1 && got[0].getParameter().equals("yo"), "notification");
            // A cancel: Statement.cancel sends a CancelRequest with the key pgate issued.
            try (Statement s = c.createStatement()) {
                long t = System.nanoTime();
                // Cancelled again every half second until the query ends: pgJDBC's cancel
                // does nothing before the query is under way.
                java.util.concurrent.atomic.AtomicBoolean done = new java.util.concurrent.atomic.AtomicBoolean();
                Thread canceller = new Thread(() -> {
                    try {
                        while (!done.get()) {
                            Thread.sleep(500);
                            s.cancel();
                        }
                    } catch (Exception e) {
                        System.err.println("cancel: " + e);
                    }
                });
                canceller.start();
                String code = sqlState(() -> s.executeQuery("select pg_sleep(20)"));
                done.set(true);
                canceller.join();
                check(code.equals("57014"), "cancel code " + code);
                check(System.nanoTime() - t < 10_000_000_000L, "the cancel reached the backend");
            }
            try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("select 2")) {
                check(r.next() && r.getInt(1) == 2, "usable after the cancel");
            }
        }
        System.out.println("ok");
    }
}
