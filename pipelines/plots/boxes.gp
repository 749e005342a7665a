# boxes.gp - the DLTK paper's Figure 2: box plots of Dice, precision and
# recall per organ, one box per configuration side by side, the cases as
# dots over them. Driven by boxes.sh, which sets (gnuplot -e):
#   out     PNG to write
#   files   space-separated statistics files, one per configuration; tab-
#           separated columns: class id, then per metric (Dice, precision,
#           recall) min, lower quartile, median, upper quartile, max
#   points  space-separated per-case files (same order): class id, Dice,
#           precision, recall
#   titles  space-separated configuration names (same order)
#   xt      the xtics as a gnuplot list: ("spleen" 1, "liver" 6, ...)
#   xb      the same ticks without labels: ("" 1, "" 6, ...)
#   nk      the largest class id
#   head    the figure title
# Boxes are drawn from precomputed quartiles (candlesticks), so that they
# are right for any number of cases (gnuplot's own boxplot style drops
# boxes of fewer than four points).
set terminal pngcairo size 1400,1050 font "DejaVu Sans,10"
set output out
set datafile separator "\t"
set datafile missing "-"
set macros
N = words(files)
bw = 0.8 / N
off(c) = (c - (N + 1) / 2.0) * bw
set style fill solid 0.35 border -1
set xrange [0.4:nk + 0.6]
set yrange [-0.02:1.02]
set ytics 0.2
set grid ytics
set key at screen 0.99, screen 0.95 right top vertical
set lmargin 10
set rmargin 24
set multiplot layout 3,1 title head font ",13"
metric(m) = m == 0 ? "Dice" : m == 1 ? "precision" : "recall"
do for [m=0:2] {
    b = 2 + 5 * m
    if (m == 2) { set xtics @xt rotate by 35 right nomirror } else { set xtics @xb nomirror }
    set ylabel metric(m)
    plot for [c=1:N] word(files, c) using ($1 + off(c)):(column(b+1)):(column(b)):(column(b+4)):(column(b+3)):(bw * 0.85) \
             with candlesticks whiskerbars 0.5 lc c title (m == 0 ? word(titles, c) : ""), \
         for [c=1:N] word(files, c) using ($1 + off(c)):(column(b+2)):(column(b+2)):(column(b+2)):(column(b+2)):(bw * 0.85) \
             with candlesticks lc rgb "black" lw 2 notitle, \
         for [c=1:N] word(points, c) using ($1 + off(c)):(column(m+2)) \
             with points pt 7 ps 0.4 lc rgb "#40000000" notitle
}
unset multiplot
