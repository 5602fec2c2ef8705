# ODDS-style anomaly sets from Debian's r-cran-mlbench: a majority class (or
# classes) is normal, a minority class is down-sampled (seed 0) to a few
# percent and labelled 1.  Usage: Rscript make_mlbench.R OUTDIR
args <- commandArgs(trailingOnly = TRUE)
out <- if (length(args) > 0) args[1] else "."
suppressMessages(library(mlbench))
mk <- function(name, X, is_anom, frac, max_normal = Inf) {
  set.seed(0)
  X <- as.data.frame(lapply(X, as.numeric))
  ok <- complete.cases(X)
  X <- X[ok, , drop = FALSE]; is_anom <- is_anom[ok]
  norm <- which(!is_anom); anom <- which(is_anom)
  if (length(norm) > max_normal) norm <- sort(sample(norm, max_normal))
  n_anom <- max(5, round(frac * length(norm) / (1 - frac)))
  if (length(anom) > n_anom) anom <- sort(sample(anom, n_anom))
  keep <- sort(c(norm, anom))
  X <- X[keep, , drop = FALSE]
  X$label <- as.integer(is_anom[keep])
  write.csv(X, file.path(out, paste0(name, ".csv")), row.names = FALSE, quote = FALSE)
  cat(sprintf("%s: %d x %d, %d anomalies\n", name, nrow(X), ncol(X) - 1, sum(X$label)))
}
data(Sonar); mk("sonar", Sonar[, 1:60], Sonar$Class == "R", 0.10)
data(Vehicle); mk("vehicle", Vehicle[, 1:18], Vehicle$Class == "van", 0.05)
data(Vowel); mk("vowel", Vowel[, 2:10], Vowel$Class == "hid", 0.05)
data(Satellite); mk("satellite", Satellite[, 1:36], Satellite$classes == "cotton crop", 0.02, 2000)
data(Shuttle); s <- Shuttle[Shuttle$Class != "Fpv.Open", ]
mk("shuttle", s[, 1:9], s$Class != "Rad.Flow", 0.07, 3000)
data(LetterRecognition); l <- LetterRecognition[LetterRecognition$lettr %in% c("A", "B", "C", "D", "E", "Z"), ]
mk("letter", l[, 2:17], l$lettr == "Z", 0.05)
