// Peak FMA rate and STREAM-like bandwidth of this CPU, for Hardware.cpu in Sources/Estimates/Hardware.swift.
// Build and run: gcc -O3 -march=native -fopenmp scripts/measure_cpu_peak.c -o /tmp/peak && /tmp/peak
// (OMP_NUM_THREADS=1 for one core). 12 independent FMA chains hide the 4-cycle latency on 2 pipes.
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <omp.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(){
  // FMA peak: 12 independent zmm accumulators per thread.
  long iters=200000000/4; double best=0;
  for(int rep=0;rep<3;rep++){
  double t0=now(); float sink=0;
  #pragma omp parallel reduction(+:sink)
  { __m512 a[12]; __m512 b=_mm512_set1_ps(0.999999f), c=_mm512_set1_ps(1e-7f);
    for(int i=0;i<12;i++) a[i]=_mm512_set1_ps(i);
    for(long k=0;k<iters;k++){ for(int i=0;i<12;i++) a[i]=_mm512_fmadd_ps(a[i],b,c);} 
    __m512 s=a[0]; for(int i=1;i<12;i++) s=_mm512_add_ps(s,a[i]); sink+=_mm512_reduce_add_ps(s);}
  double t=now()-t0; double fl=(double)omp_get_max_threads()*iters*12*16*2; if(fl/t>best)best=fl/t; if(sink==1)printf("x");}
  printf("fma peak %.1f GFLOP/s threads %d\n",best/1e9,omp_get_max_threads());
  long n=1L<<25; float *x=aligned_alloc(64,n*4),*y=aligned_alloc(64,n*4),*z=aligned_alloc(64,n*4);
  #pragma omp parallel for
  for(long i=0;i<n;i++){x[i]=1;y[i]=2;z[i]=0;}
  double bc=0,bt=0;
  for(int rep=0;rep<5;rep++){
   double t0=now();
   #pragma omp parallel for
   for(long i=0;i<n;i++) z[i]=x[i];
   double t=now()-t0; double b=2.0*n*4/t; if(b>bc)bc=b;
   t0=now();
   #pragma omp parallel for
   for(long i=0;i<n;i++) z[i]=x[i]+1.5f*y[i];
   t=now()-t0; b=3.0*n*4/t; if(b>bt)bt=b;}
  printf("copy %.1f GB/s triad %.1f GB/s (arrays %ld MiB each)\n",bc/1e9,bt/1e9,n*4>>20);
  printf("%f\n",z[7]);
}
