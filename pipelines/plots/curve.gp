# curve.gp - the training curve: loss over steps (left axis, log scale)
# and mean validation Dice (right axis), from dlt-train's --log TSV.
# Driven by curve.sh, which sets (gnuplot -e):
#   out    PNG to write
#   loss   file of step, loss rows (tab-separated)
#   val    file of step, mean validation Dice rows (may be empty)
#   head   the title
set terminal pngcairo size 900,540 font "DejaVu Sans,10"
set output out
set datafile separator "\t"
set title head font ",12"
set xlabel "step"
set ylabel "training loss"
set logscale y
set grid xtics ytics
set key top center horizontal
hasval = system("test -s '" . val . "' && echo 1 || echo 0") + 0
if (hasval) {
    set y2label "validation Dice (mean over organs)"
    set y2range [0:1]
    set y2tics 0.1
    set ytics nomirror
    plot loss using 1:2 with lines lw 1.5 lc rgb "#1f77b4" title "loss", \
         val using 1:2 axes x1y2 with linespoints pt 7 ps 0.6 lw 1.5 lc rgb "#d62728" title "validation Dice"
} else {
    plot loss using 1:2 with lines lw 1.5 lc rgb "#1f77b4" title "loss"
}
